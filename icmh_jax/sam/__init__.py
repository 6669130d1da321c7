"""icmh_jax.sam."""
