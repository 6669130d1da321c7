"""icmh-jax: scalable learned image coding for humans and machines, in JAX/Flax."""

from icmh_jax import xla_options

xla_options.apply()

__version__ = "0.1.0"
