"""icmh-jax: scalable learned image coding for humans and machines, in JAX/Flax."""

__version__ = "0.1.0"
