"""Activations with PyTorch's definitions."""

import jax
import numpy as np


def leaky_relu(x):
  """LeakyReLU with PyTorch's default slope 0.01."""
  return jax.nn.leaky_relu(x, 0.01)


def gelu(x):
  """Exact GELU, torch's default: x (1 + erf(x / sqrt 2)) / 2. Written with erf rather than
  jax.nn.gelu(approximate=False)'s erfc, which XLA CPU evaluates about 2x slower; the same
  function to float32 rounding."""
  return 0.5 * x * (1.0 + jax.lax.erf(x * np.asarray(2 ** -0.5, x.dtype)))
