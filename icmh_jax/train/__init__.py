"""icmh_jax.train."""
