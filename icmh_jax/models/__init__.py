"""icmh_jax.models."""
