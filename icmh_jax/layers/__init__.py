"""icmh_jax.layers."""
