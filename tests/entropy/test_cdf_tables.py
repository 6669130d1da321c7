"""Integer-symbol probability tables: reference offsets/lengths, normalisation, determinism."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit, ndtr

from icmh_jax.entropy import gaussian, tables
from icmh_jax.entropy.factorized import FactorizedPrior


def test_gaussian_tables_match_reference_offsets_and_lengths(tcm_golden):
  npz, _ = tcm_golden
  t = tables.gaussian_tables(gaussian.scale_table())
  np.testing.assert_array_equal(t.offsets, npz["param/gaussian_conditional._offset"])
  # compressai's cdf_length counts the CDF's end point: bins + escape + 1.
  np.testing.assert_array_equal(t.lengths + 1, npz["param/gaussian_conditional._cdf_length"])


def test_gaussian_tables_agree_with_reference_16_bit_cdfs(tcm_golden):
  npz, _ = tcm_golden
  t = tables.gaussian_tables(gaussian.scale_table())
  cdf = npz["param/gaussian_conditional._quantized_cdf"]
  for k in range(64):
    _assert_close_to_16_bit_cdf(t, k, cdf[k])


def _assert_close_to_16_bit_cdf(t, k, cdf):
  """Coding table k's float64 distribution with the reference's 16-bit CDF costs little: the
  KL divergence is what compressai's 1/65536 floor per bin takes from the mass (≲ n/65536/ln 2),
  and no symbol of the support, however improbable, costs more than a bit over what the
  reference pays (both floor every bin at 2^-16; the reference rounds each bin to a multiple of
  it and gives its rounding remainder to the escape bin, which we do not copy)."""
  n = t.lengths[k]
  p = t.normalized()[k, :n]
  ref = np.diff(cdf[:n + 1]) / 65536.0
  kl_bits = np.sum(p * np.log2(p / ref))
  assert abs(kl_bits) <= 2 * n / 65536.0 + 2e-3, (k, kl_bits)
  extra_bits = np.log2(ref / p)[:-1]
  assert extra_bits.max() <= 1.001, (k, int(extra_bits.argmax()), extra_bits.max())


def test_factorized_tables_match_reference_offsets_and_lengths(tcm_golden, golden_eb_params):
  npz, _ = tcm_golden
  t = tables.factorized_tables(golden_eb_params)
  np.testing.assert_array_equal(t.offsets, npz["param/entropy_bottleneck._offset"])
  np.testing.assert_array_equal(t.lengths + 1, npz["param/entropy_bottleneck._cdf_length"])
  cdf = npz["param/entropy_bottleneck._quantized_cdf"]
  for c in range(192):
    _assert_close_to_16_bit_cdf(t, c, cdf[c])
  z = npz["cmp/z_symbols"][0]
  lo = t.offsets[:, None, None]
  assert np.all((z >= lo) & (z <= lo + t.lengths[:, None, None] - 2))


def _density_mass(kind, t, prior_params):
  """Each table's bins as the density gives them (scipy / the flax model, not `portable_math`):
  (K, L) with the support bins' mass, then the two tails' mass in the escape bin."""
  mass = np.zeros(t.pmfs.shape)
  rows = np.arange(t.num_tables)
  if kind == "gaussian":
    s = gaussian.scale_table().astype(np.float64)
    for k in rows:
      c = -t.offsets[k]
      v = np.abs(np.arange(-c, c + 1, dtype=np.float64))
      mass[k, :2 * c + 1] = ndtr((0.5 - v) / s[k]) - ndtr((-0.5 - v) / s[k])
      mass[k, 2 * c + 1] = 2 * ndtr((-0.5 - c) / s[k])
    return mass
  model = FactorizedPrior(12)
  med = prior_params["quantiles"][:, 0, 1].astype(np.float64)
  width = t.pmfs.shape[1]
  edges = med[:, None] + t.offsets[:, None] + np.arange(width)[None, :] - 0.5  # (C, L)
  logits = model.apply({"params": prior_params}, jnp.asarray(edges[:, None, :], jnp.float32),
                       method=model.logits_cumulative)
  cdf = expit(np.asarray(logits, np.float64)[:, 0])
  for k in rows:
    n = t.lengths[k] - 1
    mass[k, :n] = cdf[k, 1:n + 1] - cdf[k, :n]
    mass[k, n] = cdf[k, 0] + 1 - cdf[k, n]
  return mass


@pytest.mark.parametrize("kind", ["gaussian", "factorized"])
def test_bins_hold_the_density_mass_floored_at_2_to_the_minus_16(kind, prior_params):
  """Support bins hold the mass the density puts on them, the escape bin the two tails' mass,
  each at least PROBABILITY_FLOOR (compressai's 16-bit tables give every bin ≥ 1/65536)."""
  t = tables.gaussian_tables(gaussian.scale_table()) if kind == "gaussian" \
      else tables.factorized_tables(prior_params)
  mass = _density_mass(kind, t, prior_params)
  floored = 0
  for k in range(t.num_tables):
    n = t.lengths[k]
    np.testing.assert_allclose(t.pmfs[k, :n], np.maximum(mass[k, :n], 2.0 ** -16),
                               rtol=1e-3 if kind == "factorized" else 1e-9, atol=1e-7, err_msg=k)
    assert np.all(t.pmfs[k, :n] >= 2.0 ** -16) and np.all(t.pmfs[k, n:] == 0)
    floored += int(np.sum(mass[k, :n] < 2.0 ** -16))
  assert floored > 0  # the floor is exercised, not vacuous


def test_factorized_table_is_the_prior_density_at_integer_offsets_from_median(prior_params):
  t = tables.factorized_tables(prior_params)
  q = prior_params["quantiles"][:, 0].astype(np.float64)
  np.testing.assert_array_equal(t.offsets, -np.maximum(np.ceil(q[:, 1] - q[:, 0]), 0))
  np.testing.assert_array_equal(t.lengths - 2 + t.offsets,
                                np.maximum(np.ceil(q[:, 2] - q[:, 1]), 0))
  # the mode of a unimodal-ish density lies near the median: bin 0 (symbol 0) is likely
  p0 = t.pmfs[np.arange(t.num_tables), -t.offsets]
  assert np.all(p0 > 0.5 / (t.lengths - 1))


def test_factorized_tables_are_cached_by_content(prior_params):
  a = tables.factorized_tables(prior_params)
  b = tables.factorized_tables({k: v.copy() for k, v in prior_params.items()})
  assert a is b
  changed = dict(prior_params, quantiles=prior_params["quantiles"] + np.float32(0.5))
  c = tables.factorized_tables(changed)
  assert c is not a and c.digest != a.digest


def test_invalid_tables_are_rejected_with_a_message():
  with pytest.raises(ValueError, match="lengths must be in"):
    tables.CdfTables(np.ones((2, 3)), np.zeros(2), np.array([1, 3]))
  with pytest.raises(ValueError, match="finite, non-negative"):
    tables.CdfTables(np.array([[0.5, -0.1]]), np.zeros(1), np.array([2]))
  with pytest.raises(ValueError, match="positive sums"):
    tables.CdfTables(np.zeros((1, 2)), np.zeros(1), np.array([2]))
  mine = np.array([[0.5, 0.5]])
  tables.CdfTables(mine, np.zeros(1), np.array([2]))
  assert mine.flags.writeable
  with pytest.raises(ValueError, match="positive scales"):
    tables.gaussian_tables(np.array([0.11, -1.0]))
