"""BD-rate against analytic values: a test curve needing r times the anchor's rate at every quality
has BD-rate (r - 1) * 100 % exactly, whatever the fit."""

import math

import numpy as np
import pytest

from icmh_jax.evaluation import bdrate


def _anchor_rate(psnr):
  """An exactly cubic log10-rate curve, so the cubic fit reproduces it at any sample points."""
  t = (psnr - 30.0) / 5.0
  return 10 ** (-0.6 + 0.35 * t + 0.02 * t**2 - 0.004 * t**3)


@pytest.mark.parametrize("method", ["cubic", "pchip", "akima"])
@pytest.mark.parametrize("r", [0.7043, 0.9757, 1.25])
def test_constant_rate_factor_gives_exact_bd_rate(method, r):
  psnr = np.array([27.0, 29.5, 31.0, 33.2, 35.0])
  got = bdrate.bd_rate(_anchor_rate(psnr), psnr, r * _anchor_rate(psnr), psnr, method=method)
  assert got == pytest.approx((r - 1) * 100, abs=1e-6)


def test_cubic_fit_is_exact_for_cubic_curves_sampled_at_other_points():
  psnr_a = np.array([27.0, 29.0, 31.0, 33.0, 35.0])
  psnr_t = np.array([28.0, 30.3, 31.7, 34.1])  # different count and positions
  got = bdrate.bd_rate(_anchor_rate(psnr_a), psnr_a, 0.8 * _anchor_rate(psnr_t), psnr_t)
  assert got == pytest.approx(-20.0, abs=1e-6)


def test_order_of_points_does_not_matter():
  psnr = np.array([35.0, 27.0, 31.0, 33.0, 29.0])
  got = bdrate.bd_rate(_anchor_rate(psnr), psnr, 1.1 * _anchor_rate(psnr)[::-1], psnr[::-1],
                       method="pchip")
  assert got == pytest.approx(10.0, abs=1e-6)


def test_bd_psnr_of_a_constant_quality_shift_is_that_shift():
  rate = np.array([0.1, 0.2, 0.4, 0.8])
  psnr = 28 + 3 * np.log2(rate / 0.1)
  assert bdrate.bd_quality(rate, psnr, rate, psnr + 0.37) == pytest.approx(0.37, abs=1e-9)


def test_disjoint_quality_ranges_give_nan():
  psnr = np.array([20.0, 21.0, 22.0, 23.0])
  assert math.isnan(bdrate.bd_rate(_anchor_rate(psnr), psnr, _anchor_rate(psnr), psnr + 10))


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="linear"), "unknown BD-rate method 'linear'; known: cubic, pchip, akima"),
    (dict(rate_test=[0.1, 0.2, 0.0, 0.4]), "rates must be > 0"),
    (dict(metric_test=[30, 31, 32]), "4 rates but 3 quality values"),
    (dict(rate_anchor=[0.1, 0.2, 0.3], metric_anchor=[30, 31, 32]), "at least 4 RD points"),
    (dict(metric_test=[30, 31, 31, 33]), "must be distinct"),
])
def test_bad_curves_raise_clear_value_errors(kwargs, match):
  args = dict(rate_anchor=[0.1, 0.2, 0.3, 0.4], metric_anchor=[30, 31, 32, 33],
              rate_test=[0.1, 0.2, 0.3, 0.4], metric_test=[30, 31, 32, 33])
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    bdrate.bd_rate(**args)
