"""Probability tables for the range coder, built once and deterministically in numpy float64.

Encoder and decoder build the same float64 tables from the same parameters with
`portable_math` (IEEE basic operations in a fixed order, so neither thread counts nor the CPU's
SIMD paths can change a bit); constriction then quantises each table identically on both sides.
Every table has one extra last bin, the *escape*: a symbol outside the table's support is coded
as the escape bin followed by its value in a bypass code (`coder.py`). No bin holds less than
PROBABILITY_FLOOR, as in compressai's 16-bit tables.
"""

import dataclasses
import hashlib

import numpy as np

from icmh_jax.entropy import portable_math as pm

TAIL_MASS = 1e-9
# Least probability of any bin (support or escape), as in compressai's 16-bit tables: a model
# whose scales are badly predicted (early training, unusual images) lands symbols far out in a
# table's tails, and each then costs at most ~16 bits instead of up to ~30, at a price of
# −log2(1 − L·2^−16) bits per symbol of an L-bin table (a few thousandths for L ≤ 100). Without
# it, LIC-TCM at N=64 from its default init wrote 14 % more bytes than the reference on the same
# weights, all of it from the 12 % of symbols below 2^−16 (benchmarks/codec.py).
PROBABILITY_FLOOR = 2.0 ** -16
TAIL_MULTIPLIER = 6.1094102048693975  # −Φ⁻¹(TAIL_MASS / 2), as scipy.stats.norm.ppf gives it
MAX_SYMBOL = 2 ** 15  # every integer in [-MAX_SYMBOL, MAX_SYMBOL] can be coded
_CACHE_SIZE = 16


@dataclasses.dataclass(frozen=True, eq=False)
class CdfTables:
  """K probability tables over integer symbols, each with a trailing escape bin.

  Attributes:
    pmfs: float64 (K, L): row k holds lengths[k] probabilities (support bins, then the escape
      bin), zero padded to L. Rows need not be normalised.
    offsets: int64 (K,): the integer symbol of bin 0 of each table.
    lengths: int64 (K,): bins per table including the escape bin (≥ 2).
    digest: SHA-256 of the three arrays (set on construction; keys the coder's model cache).
  """
  pmfs: np.ndarray
  offsets: np.ndarray
  lengths: np.ndarray

  def __post_init__(self):
    # private read-only copies: the digest must keep describing the arrays
    pmfs = np.array(self.pmfs, dtype=np.float64, order="C")
    offsets = np.array(self.offsets, dtype=np.int64, order="C")
    lengths = np.array(self.lengths, dtype=np.int64, order="C")
    if pmfs.ndim != 2 or offsets.shape != (pmfs.shape[0],) or lengths.shape != offsets.shape:
      raise ValueError(f"CdfTables needs pmfs (K, L), offsets (K,), lengths (K,); got "
                       f"{pmfs.shape}, {offsets.shape}, {lengths.shape}")
    if pmfs.shape[0] == 0 or np.any(lengths < 2) or np.any(lengths > pmfs.shape[1]):
      raise ValueError(f"table lengths must be in [2, {pmfs.shape[1]}], got "
                       f"{lengths.min(initial=0)}..{lengths.max(initial=0)} for "
                       f"{pmfs.shape[0]} tables")
    if not np.all(np.isfinite(pmfs)) or np.any(pmfs < 0) or np.any(pmfs.sum(axis=1) <= 0):
      raise ValueError("table probabilities must be finite, non-negative, with positive sums")
    if np.any(offsets < -MAX_SYMBOL) or np.any(offsets + lengths - 2 > MAX_SYMBOL):
      raise ValueError(f"table supports must lie within ±{MAX_SYMBOL}")
    for name, value in (("pmfs", pmfs), ("offsets", offsets), ("lengths", lengths)):
      value.setflags(write=False)
      object.__setattr__(self, name, value)
    h = hashlib.sha256()
    for value in (pmfs, offsets, lengths):
      h.update(str(value.shape).encode())
      h.update(value.tobytes())
    object.__setattr__(self, "digest", h.digest())

  @property
  def num_tables(self) -> int:
    return int(self.pmfs.shape[0])

  def normalized(self) -> np.ndarray:
    """pmfs with each row divided by its sum, float64 (K, L)."""
    return self.pmfs / self.pmfs.sum(axis=1, keepdims=True)


_cache: dict[bytes, CdfTables] = {}


def _cached(key: bytes, build):
  if key not in _cache:
    if len(_cache) >= _CACHE_SIZE:
      _cache.pop(next(iter(_cache)))
    _cache[key] = build()
  return _cache[key]


def _content_key(kind: str, arrays) -> bytes:
  h = hashlib.sha256(kind.encode())
  for name, a in arrays:
    a = np.ascontiguousarray(a)
    h.update(f"{name}:{a.dtype}:{a.shape}".encode())
    h.update(a.tobytes())
  return h.digest()


def gaussian_pmf_centers(scale_table) -> np.ndarray:
  """Half-widths ceil(s · −Φ⁻¹(tail/2)) of each table's support, computed in float32 like
  compressai (so offsets equal the reference's `_offset`), int64 (K,)."""
  multiplier = np.float32(TAIL_MULTIPLIER)
  return np.ceil(np.asarray(scale_table, np.float32) * multiplier).astype(np.int64)


def gaussian_tables(scale_table) -> CdfTables:
  """Tables of zero-mean Gaussians discretised to unit bins, one per scale.

  Args:
    scale_table: float (K,) scales (normally `gaussian.scale_table()`).

  Returns:
    CdfTables with support [−c, c], c = ceil(s · 6.1094), and an escape bin holding the two
    tails' mass; every bin at least PROBABILITY_FLOOR (rows are then normalised by the coder).
  """
  table = np.asarray(scale_table, np.float32)
  if table.ndim != 1 or not np.all(np.isfinite(table)) or np.any(table <= 0):
    raise ValueError(f"scale_table must be a 1-D array of positive scales, got {table!r}")
  return _cached(_content_key("gaussian", [("table", table)]), lambda: _build_gaussian(table))


def _build_gaussian(table: np.ndarray) -> CdfTables:
  centers = gaussian_pmf_centers(table)
  width = int(2 * centers.max() + 2)
  pmfs = np.zeros((table.size, width), np.float64)
  for k, (s, c) in enumerate(zip(table.astype(np.float64), centers)):
    v = np.abs(np.arange(-c, c + 1, dtype=np.float64))
    # Both Φ arguments are ≤ 0 away from the centre, so the tails keep full relative precision.
    pmfs[k, :2 * c + 1] = pm.ndtr((0.5 - v) / s) - pm.ndtr((-0.5 - v) / s)
    pmfs[k, 2 * c + 1] = 2.0 * pm.ndtr(np.float64(-0.5 - c) / s)
    pmfs[k, :2 * c + 2] = np.maximum(pmfs[k, :2 * c + 2], PROBABILITY_FLOOR)
  return CdfTables(pmfs, -centers, 2 * centers + 2)


def _logits_cumulative_f64(params: dict, v: np.ndarray) -> np.ndarray:
  """FactorizedPrior.logits_cumulative in float64: v (C, 1, K) -> (C, 1, K)."""
  k = 0
  while f"matrices_{k}" in params:
    w = pm.softplus(params[f"matrices_{k}"])
    acc = w[:, :, 0:1] * v[:, 0:1, :]
    for j in range(1, w.shape[2]):
      acc = acc + w[:, :, j:j + 1] * v[:, j:j + 1, :]
    v = acc + params[f"biases_{k}"]
    if f"factors_{k}" in params:
      v = v + pm.tanh(params[f"factors_{k}"]) * pm.tanh(v)
    k += 1
  return v


def factorized_tables(prior_params: dict) -> CdfTables:
  """Per-channel tables of a FactorizedPrior, from its learned CDF in float64.

  The symbol of z[..., c] is round(z − median_c); the support of channel c is
  [−ceil(median − q0), ceil(q2 − median)] (each side at least 0), q = quantiles[c, 0]. The result
  is cached by the parameters' content, so callers may call this on every compress.

  Args:
    prior_params: the FactorizedPrior's params (`matrices_k`, `biases_k`, `factors_k`,
      `quantiles`), numpy or JAX arrays.

  Returns:
    CdfTables with one table per channel (index = channel).
  """
  names = sorted(prior_params)
  if "quantiles" not in prior_params or "matrices_0" not in prior_params:
    raise ValueError(f"factorized_tables needs FactorizedPrior params, got keys {names}")
  arrays = [(n, np.asarray(prior_params[n], np.float32)) for n in names]
  key = _content_key("factorized", arrays)
  return _cached(key, lambda: _build_factorized({n: a.astype(np.float64) for n, a in arrays}))


def _build_factorized(params: dict) -> CdfTables:
  q = params["quantiles"][:, 0, :]
  if not np.all(np.isfinite(q)):
    raise ValueError("factorized prior quantiles must be finite")
  medians = q[:, 1]
  minima = np.maximum(np.ceil(medians - q[:, 0]), 0).astype(np.int64)
  maxima = np.maximum(np.ceil(q[:, 2] - medians), 0).astype(np.int64)
  if np.any(minima + maxima > MAX_SYMBOL):
    raise ValueError(f"factorized prior quantile range too wide for a table: "
                     f"{int((minima + maxima).max())} bins (limit {MAX_SYMBOL})")
  lengths = minima + maxima + 2
  width = int(lengths.max())
  k = np.arange(width - 1, dtype=np.float64)[None, None, :] - minima[:, None, None]
  samples = medians[:, None, None] + k
  lower = _logits_cumulative_f64(params, samples - 0.5)[:, 0, :]
  upper = _logits_cumulative_f64(params, samples + 0.5)[:, 0, :]
  # Subtract on the side where both sigmoids are small (compressai's sign trick).
  flip = (lower + upper) > 0
  pmf = np.where(flip, pm.sigmoid(-lower) - pm.sigmoid(-upper),
                 pm.sigmoid(upper) - pm.sigmoid(lower))
  pmf = np.abs(pmf)
  pmfs = np.zeros((q.shape[0], width), np.float64)
  rows = np.arange(q.shape[0])
  for c in rows:
    n = lengths[c] - 1
    pmfs[c, :n] = pmf[c, :n]
    pmfs[c, n] = pm.sigmoid(lower[c, 0]) + pm.sigmoid(-upper[c, n - 1])
  used = np.arange(width)[None, :] < lengths[:, None]
  pmfs = np.where(used, np.maximum(pmfs, PROBABILITY_FLOOR), 0.0)
  return CdfTables(pmfs, -minima, lengths)
