"""icmh_jax.entropy."""
