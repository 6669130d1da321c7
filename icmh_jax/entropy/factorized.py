"""Factorized prior for hyper-latents z (Ballé et al. 2018, appendix 6.1; compressai's
EntropyBottleneck as of compressai 1.2.8).

Each channel c has its own learned, monotone cumulative f_c: R → R (logits of the CDF), a chain
of five 1-D "dense" layers of widths (1, 3, 3, 3, 3, 1) with softplus weights and tanh gates.
The likelihood of a unit bin is σ(f(v + ½)) − σ(f(v − ½)). Three `quantiles` per channel are
trained by the auxiliary loss to the points where f equals logit(tail/2), 0 and logit(1−tail/2),
so the coder knows each channel's median and range.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.entropy.bounds import lower_bound
from icmh_jax.entropy.gaussian import LIKELIHOOD_BOUND


def _matrix_init(value):
  return lambda key, shape, dtype=jnp.float32: jnp.full(shape, value, dtype)


def _uniform_init(lo, hi):
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, lo, hi)


def _quantiles_init(init_scale):
  def init(key, shape, dtype=jnp.float32):
    del key
    return jnp.broadcast_to(jnp.asarray([-init_scale, 0.0, init_scale], dtype), shape)
  return init


def tail_targets(tail_mass: float) -> np.ndarray:
  """Logits the three quantiles should reach: [−ln(2/tail − 1), 0, ln(2/tail − 1)], float32 (3,)."""
  t = np.log(2.0 / tail_mass - 1.0)
  return np.asarray([-t, 0.0, t], np.float32)


class FactorizedPrior(nn.Module):
  """Per-channel learned density for z; parameters named and shaped like compressai's.

  Parameters (C = channels, f = (1, *filters, 1)): `matrices_k` (C, f[k+1], f[k]) and `biases_k`
  (C, f[k+1], 1) for k = 0..4, `factors_k` (C, f[k+1], 1) for k = 0..3, `quantiles` (C, 1, 3).

  Attributes:
    channels: number of channels C of z.
    filters: widths of the hidden layers of f.
    init_scale: initial half-width of the quantile range (and scale of the initial density).
    tail_mass: probability mass left outside the quantile range (both tails together).
  """
  channels: int
  filters: Sequence[int] = (3, 3, 3, 3)
  init_scale: float = 10.0
  tail_mass: float = 1e-9

  def setup(self):
    f = (1, *self.filters, 1)
    scale = self.init_scale ** (1.0 / (len(self.filters) + 1))
    c = self.channels
    matrices, biases, factors = [], [], []
    for k in range(len(self.filters) + 1):
      init = float(np.log(np.expm1(1.0 / scale / f[k + 1])))
      matrices.append(self.param(f"matrices_{k}", _matrix_init(init), (c, f[k + 1], f[k])))
      biases.append(self.param(f"biases_{k}", _uniform_init(-0.5, 0.5), (c, f[k + 1], 1)))
      if k < len(self.filters):
        factors.append(self.param(f"factors_{k}", nn.initializers.zeros, (c, f[k + 1], 1)))
    self.matrices, self.biases, self.factors = matrices, biases, factors
    self.quantiles = self.param("quantiles", _quantiles_init(self.init_scale), (c, 1, 3))

  def logits_cumulative(self, v, stop_gradient: bool = False):
    """f_c(v): the logits of each channel's CDF.

    Args:
      v: float array (C, 1, K), K points per channel.
      stop_gradient: detach matrices, biases and factors (used by the aux loss).

    Returns:
      float array (C, 1, K).
    """
    sg = jax.lax.stop_gradient if stop_gradient else (lambda a: a)
    for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
      weight = jax.nn.softplus(sg(matrix))
      # An explicit sum in a fixed order: widths are ≤ 3, and it keeps full float32 precision
      # on every backend (TPU matmuls default to bfloat16 passes).
      acc = weight[:, :, 0:1] * v[:, 0:1, :]
      for j in range(1, weight.shape[2]):
        acc = acc + weight[:, :, j:j + 1] * v[:, j:j + 1, :]
      v = acc + sg(bias)
      if k < len(self.factors):
        v = v + jnp.tanh(sg(self.factors[k])) * jnp.tanh(v)
    return v

  def likelihood(self, v):
    """Unfloored bin probabilities σ(f(v+½)) − σ(f(v−½)) and both logits, each (C, 1, K)."""
    lower = self.logits_cumulative(v - 0.5)
    upper = self.logits_cumulative(v + 0.5)
    return jax.nn.sigmoid(upper) - jax.nn.sigmoid(lower), lower, upper

  def __call__(self, z_tilde):
    """Likelihoods of z̃ (z + U(−½, ½) when training, round(z − median) + median otherwise).

    Args:
      z_tilde: float array [B, H, W, C].

    Returns:
      likelihoods [B, H, W, C], floored at 1e-9 (gradient-preserving lower bound).
    """
    b, h, w, c = z_tilde.shape
    if c != self.channels:
      raise ValueError(f"FactorizedPrior has {self.channels} channels, input has {c}")
    v = jnp.transpose(z_tilde, (3, 0, 1, 2)).reshape(c, 1, b * h * w)
    lik, _, _ = self.likelihood(v)
    lik = lower_bound(lik, LIKELIHOOD_BOUND)
    return jnp.transpose(lik.reshape(c, b, h, w), (1, 2, 3, 0))

  def medians(self):
    """The per-channel medians quantiles[:, 0, 1], shape (C,)."""
    return self.quantiles[:, 0, 1]

  def aux_loss(self):
    """Σ |f(quantiles) − targets|; only the quantiles receive gradient (scalar)."""
    logits = self.logits_cumulative(self.quantiles, stop_gradient=True)
    return jnp.sum(jnp.abs(logits - jnp.asarray(tail_targets(self.tail_mass))))
