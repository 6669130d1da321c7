"""Gaussian conditional entropy model (Ballé et al. 2018, as in compressai's GaussianConditional).

The latents y are coded as integer symbols round(y − μ) under a zero-mean Gaussian of scale σ
discretised to unit bins. σ is floored at 0.11 (smaller scales put almost all mass on one bin and
only make the rate estimate unstable) and the coder picks one of 64 log-spaced scales per element
through `build_indexes`.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.entropy import portable_math
from icmh_jax.entropy.bounds import lower_bound

SCALE_BOUND = 0.11
LIKELIHOOD_BOUND = 1e-9
NUM_SCALES = 64
SCALE_MAX = 256.0


def _compute_scale_table() -> np.ndarray:
  # torch.linspace in float32: start + step·i (fused multiply-add) up to the middle, then
  # end − step·(n−1−i); exp rounded to float32. This reproduces the reference exactly, and
  # portable_math keeps it identical on every CPU (encoder and decoder index with it).
  n = NUM_SCALES
  lo, hi = np.float32(math.log(SCALE_BOUND)), np.float32(math.log(SCALE_MAX))
  step = np.float64((hi - lo) / np.float32(n - 1))
  i = np.arange(n, dtype=np.float64)
  lin = np.where(i < n // 2, np.float64(lo) + step * i, np.float64(hi) - step * (n - 1 - i))
  return portable_math.exp(lin.astype(np.float32).astype(np.float64)).astype(np.float32)


_SCALE_TABLE = _compute_scale_table()


def scale_table() -> np.ndarray:
  """The 64 coder scales exp(linspace(ln 0.11, ln 256, 64)), computed in float32.

  Returns:
    float32 array (64,) (a fresh copy), equal bit for bit to compressai's / LIC-TCM's
    `scale_table` buffer.
  """
  return _SCALE_TABLE.copy()


def build_indexes(scales):
  """Scale-table index per element: the first table entry not smaller than max(scale, 0.11).

  index = 63 − #{t in table[0:63] : s ≤ t}, so scales above the last entry map to 63.

  Args:
    scales: float array (any shape), numpy or JAX.

  Returns:
    int32 array of the same shape and kind (numpy in, numpy out), values in [0, 63].
  """
  xp = np if isinstance(scales, np.ndarray) else jnp
  table = xp.asarray(scale_table()[:-1])
  s = xp.maximum(xp.asarray(scales, dtype=xp.float32), xp.float32(SCALE_BOUND))
  # 63 − #{t : s ≤ t} = #{t : t < s}, the left insertion point of s in the sorted table
  return xp.searchsorted(table, s, side="left").astype(xp.int32)


def _std_normal_cdf(t):
  return 0.5 * jax.scipy.special.erfc(-t * (2.0 ** -0.5))


def gaussian_likelihood(values, scales, means=None):
  """Probability of each value's unit bin under N(means, scales²) (compressai's `_likelihood`).

  lik = Φ((0.5 − v)/s) − Φ((−0.5 − v)/s) with v = |values − means| (the symmetric form keeps
  precision in the tails) and s = lower_bound(scales, 0.11), then floored at 1e-9.

  Args:
    values: float array [...]: round(y − μ) + μ when evaluating, y + noise when training.
    scales: float array broadcastable to values (raw, may be ≤ 0).
    means: optional float array broadcastable to values (None: zero mean).

  Returns:
    likelihoods, float array of values' shape, in [1e-9, 1].
  """
  v = values if means is None else values - means
  v = jnp.abs(v)
  s = lower_bound(scales, SCALE_BOUND)
  upper = _std_normal_cdf((0.5 - v) / s)
  lower = _std_normal_cdf((-0.5 - v) / s)
  return lower_bound(upper - lower, LIKELIHOOD_BOUND)
