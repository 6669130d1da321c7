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
  KL divergence is what compressai's 1/65536 floor per bin takes from the mass (≲ n/65536/ln 2)."""
  n = t.lengths[k]
  p = t.normalized()[k, :n]
  ref = np.diff(cdf[:n + 1]) / 65536.0
  kl_bits = np.sum(p * np.log2(p / ref))
  assert 0 <= kl_bits <= 2 * n / 65536.0 + 2e-3, (k, kl_bits)


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


@pytest.mark.parametrize("kind", ["gaussian", "factorized"])
def test_support_bins_plus_true_tail_mass_sum_to_one(kind, prior_params):
  """The support bins hold exactly the mass the density puts between the support's edges; the
  escape bin holds the rest (floored at ESCAPE_FLOOR)."""
  if kind == "gaussian":
    t = tables.gaussian_tables(gaussian.scale_table())
    s = gaussian.scale_table().astype(np.float64)
    c = -t.offsets
    tail = 2 * ndtr((-0.5 - c) / s)
  else:
    t = tables.factorized_tables(prior_params)
    model = FactorizedPrior(12)
    med = prior_params["quantiles"][:, 0, 1].astype(np.float64)
    edges = np.stack([med + t.offsets - 0.5, med + t.offsets + t.lengths - 1.5], -1)
    logits = model.apply({"params": prior_params}, jnp.asarray(edges[:, None, :], jnp.float32),
                         method=model.logits_cumulative)
    logits = np.asarray(logits, np.float64)[:, 0]
    tail = expit(logits[:, 0]) + expit(-logits[:, 1])
  rows = np.arange(t.num_tables)
  support = t.pmfs.sum(axis=1) - t.pmfs[rows, t.lengths - 1]
  np.testing.assert_allclose(support + tail, 1.0, atol=1e-6)
  np.testing.assert_allclose(t.pmfs[rows, t.lengths - 1], np.maximum(tail, tables.ESCAPE_FLOOR),
                             rtol=1e-3, atol=1e-7)
  for k in range(t.num_tables):
    row = t.pmfs[k, :t.lengths[k]]
    assert np.all(row > 0) and np.all(t.pmfs[k, t.lengths[k]:] == 0)


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
