"""icmh_jax.convert."""
