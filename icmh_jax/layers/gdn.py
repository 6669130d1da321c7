"""Generalized divisive normalization (Ballé et al. 2016) as in compressai, NHWC.

The parameters are stored reparametrised exactly like compressai's `GDN` (`beta`, `gamma` are the
square roots offset by a pedestal), so converting a checkpoint is a rename:
  beta = max(beta_s, sqrt(beta_min + p))² - p,  gamma = max(gamma_s, sqrt(p))² - p,  p = 2^-36,
  GDN:  y_i = x_i / sqrt(beta_i + Σ_j gamma[i, j] x_j²),  IGDN: y_i = x_i · sqrt(...).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.entropy.bounds import lower_bound

PEDESTAL = 2.0 ** -36  # reparam_offset 2^-18, squared
BETA_MIN = 1e-6


def _reparam(v, minimum: float):
  bound = float(np.sqrt(minimum + PEDESTAL))
  return jnp.square(lower_bound(v, bound)) - PEDESTAL


class GDN(nn.Module):
  """GDN / IGDN over the channel axis.

  Attributes:
    channels: C.
    inverse: IGDN (multiply by the norm) instead of GDN (divide).
  Params: `beta` [C], `gamma` [C_out=i, C_in=j], both reparametrised as in compressai.
  """
  channels: int
  inverse: bool = False

  @nn.compact
  def __call__(self, x):
    """x: [B, H, W, C] -> [B, H, W, C]."""
    c = self.channels
    beta_s = self.param("beta", lambda _: jnp.sqrt(jnp.ones((c,)) + PEDESTAL))
    gamma_s = self.param("gamma", lambda _: jnp.sqrt(0.1 * jnp.eye(c) + PEDESTAL))
    beta = _reparam(beta_s, BETA_MIN)
    gamma = _reparam(gamma_s, 0.0)
    norm = jnp.einsum("bhwj,ij->bhwi", jnp.square(x), gamma) + beta
    return x * jnp.sqrt(norm) if self.inverse else x * jax.lax.rsqrt(norm)

