"""Gaussian conditional: scale table, build_indexes and likelihoods against the LIC-TCM golden
set."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import ndtr

from icmh_jax.entropy import gaussian


def test_scale_table_is_bit_equal_to_reference(tcm_golden):
  npz, _ = tcm_golden
  ref = npz["param/gaussian_conditional.scale_table"]
  table = gaussian.scale_table()
  assert table.dtype == np.float32
  np.testing.assert_array_equal(table.view(np.uint32), ref.view(np.uint32))


def test_build_indexes_matches_golden_unit_and_slice_scales(tcm_golden):
  npz, _ = tcm_golden
  np.testing.assert_array_equal(gaussian.build_indexes(npz["unit/gaussian_conditional/scales"]),
                                npz["unit/gaussian_conditional/indexes"])
  for i in range(5):
    scale = npz[f"fwd/slice{i}/scale"]
    expected = npz["cmp/y_indexes"][:, 64 * i:64 * (i + 1)]
    np.testing.assert_array_equal(gaussian.build_indexes(scale), expected)
    np.testing.assert_array_equal(np.asarray(jax.jit(gaussian.build_indexes)(jnp.asarray(scale))),
                                  expected)


def test_build_indexes_picks_first_entry_not_below_scale():
  table = gaussian.scale_table()
  scales = np.concatenate([table, np.nextafter(table, np.float32(np.inf)), [-5.0, 0.0, 1e4]])
  idx = gaussian.build_indexes(scales.astype(np.float32))
  np.testing.assert_array_equal(idx[:64], np.arange(64))
  np.testing.assert_array_equal(idx[64:127], np.arange(1, 64))
  np.testing.assert_array_equal(idx[127:], [63, 0, 0, 63])


def test_gaussian_likelihood_matches_golden(tcm_golden):
  npz, _ = tcm_golden
  get = lambda k: npz[f"unit/gaussian_conditional/{k}"]
  outputs = np.round(get("inputs") - get("means")) + get("means")
  np.testing.assert_array_equal(outputs, get("outputs"))
  lik = np.asarray(gaussian.gaussian_likelihood(jnp.asarray(outputs), jnp.asarray(get("scales")),
                                                jnp.asarray(get("means"))))
  ref = get("likelihoods")
  # 1e-5 relative, plus 4 ulp of 0.5: at scales in the hundreds both Φ terms are near 0.5 and
  # their float32 difference cancels (the reference itself is 5e-5 off float64 there).
  np.testing.assert_allclose(lik, ref, rtol=1e-5, atol=2.0 ** -22)


def test_gaussian_likelihood_matches_float64_formula_on_slices(tcm_golden):
  npz, _ = tcm_golden
  for i in (0, 4):
    y_hat = npz[f"fwd/slice{i}/y_hat_pre_lrp"]
    mu, scale = npz[f"fwd/slice{i}/mu"], npz[f"fwd/slice{i}/scale"]
    lik = np.asarray(gaussian.gaussian_likelihood(y_hat, scale, mu))
    np.testing.assert_allclose(lik, npz[f"fwd/slice{i}/likelihoods"], rtol=1e-5, atol=2.0 ** -22)
    v = np.abs(y_hat.astype(np.float64) - mu)
    s = np.maximum(scale.astype(np.float64), 0.11)
    exact = np.maximum(ndtr((0.5 - v) / s) - ndtr((-0.5 - v) / s), 1e-9)
    np.testing.assert_allclose(lik, exact, rtol=1e-4, atol=2.0 ** -22)


def test_likelihood_gradient_reaches_scales_below_bound_only_when_pushing_up():
  values = jnp.asarray([0.0, 0.0])
  scales = jnp.asarray([0.05, 1.0])
  g = jax.grad(lambda s: -jnp.sum(jnp.log(gaussian.gaussian_likelihood(values, s))))(scales)
  # at v = 0 a smaller scale raises the likelihood: the loss wants s lower, which the bound
  # blocks below 0.11; above the bound the gradient is the analytic one (positive).
  assert g[0] == 0.0
  s = 1.0
  p = ndtr(0.5 / s) - ndtr(-0.5 / s)
  dp_ds = -2 * 0.5 / s ** 2 * np.exp(-0.125 / s ** 2) / np.sqrt(2 * np.pi)
  np.testing.assert_allclose(g[1], -dp_ds / p, rtol=1e-5)
