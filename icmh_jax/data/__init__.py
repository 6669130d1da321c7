"""icmh_jax.data."""
