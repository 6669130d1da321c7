"""Bjøntegaard delta rate (BD-rate) between two rate-distortion curves, via `bjontegaard`.

BD-rate is the average relative rate difference of a test codec against an anchor at equal
quality: both curves are fitted as log10(rate) as a function of quality (PSNR in dB or MS-SSIM),
the fits are integrated over the overlapping quality interval, and the mean log-rate gap Δ gives
(10^Δ − 1)·100 %. Negative = the test codec needs fewer bits. The paper's Table I is BD-rate (PSNR)
of FR-ICMH and PR-ICMH against ICMH-FF with the same N_a.

Methods (the `bjontegaard` package, 1.3): "cubic" is the classic VCEG-M33 fit, one cubic
polynomial through all points (least squares with more than four); "pchip" is the piecewise cubic
Hermite interpolation of the JVET common test conditions (CTC), monotone and less sensitive
to a stray point; "akima" is available too. Tables state which method made them.
"""

import math
import warnings

import numpy as np

METHODS = ("cubic", "pchip", "akima")
DEFAULT_METHOD = "cubic"
METHOD_NAMES = {"cubic": "cubic polynomial fit (VCEG-M33)",
                "pchip": "piecewise cubic Hermite interpolation (JVET CTC)",
                "akima": "Akima interpolation"}


def _curve(rate, metric, which):
  rate = np.asarray(rate, np.float64).ravel()
  metric = np.asarray(metric, np.float64).ravel()
  if rate.shape != metric.shape:
    raise ValueError(f"{which} curve: {rate.size} rates but {metric.size} quality values")
  if rate.size < 2:
    raise ValueError(f"{which} curve: need at least 2 RD points, got {rate.size}")
  if not (np.all(np.isfinite(rate)) and np.all(np.isfinite(metric))):
    raise ValueError(f"{which} curve: rates and quality values must be finite, got "
                     f"rate={rate.tolist()} quality={metric.tolist()}")
  if np.any(rate <= 0):
    raise ValueError(f"{which} curve: rates must be > 0 (log scale), got {rate.tolist()}")
  order = np.argsort(metric, kind="stable")
  rate, metric = rate[order], metric[order]
  if np.any(np.diff(metric) <= 0):
    raise ValueError(f"{which} curve: quality values must be distinct, got {metric.tolist()}")
  return rate, metric


def bd_rate(rate_anchor, metric_anchor, rate_test, metric_test, method=DEFAULT_METHOD):
  """BD-rate of the test curve against the anchor, in percent.

  Args:
    rate_anchor, metric_anchor: [n] rates (e.g. bpp, > 0) and qualities (PSNR dB or MS-SSIM) of
      the anchor; any order, sorted here by quality.
    rate_test, metric_test: [m] the same for the test codec (m may differ from n).
    method: "cubic" (default, classic), "pchip" or "akima".

  Returns:
    The BD-rate in percent (negative = the test saves bits), or NaN when the quality ranges do
    not overlap (a warning says so).

  Raises:
    ValueError: on an unknown method, mismatched lengths, fewer than 2 points, non-positive
      rates or repeated quality values.
  """
  if method not in METHODS:
    raise ValueError(f"unknown BD-rate method {method!r}; known: {', '.join(METHODS)}")
  import bjontegaard
  ra, ma = _curve(rate_anchor, metric_anchor, "anchor")
  rt, mt = _curve(rate_test, metric_test, "test")
  if method == "cubic" and min(ra.size, rt.size) < 4:
    raise ValueError(f"cubic BD-rate needs at least 4 RD points per curve, got {ra.size} and "
                     f"{rt.size}; use method='pchip'")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # small overlap: still the number asked for
    value = bjontegaard.bd_rate(ra, ma, rt, mt, method=method, require_matching_points=False,
                                min_overlap=0)
  return float(value)


def bd_quality(rate_anchor, metric_anchor, rate_test, metric_test, method=DEFAULT_METHOD):
  """BD-PSNR (or BD-MS-SSIM): average quality gain of the test at equal log rate.

  Args and Raises: as `bd_rate`.

  Returns:
    The mean quality difference test − anchor in the metric's unit, NaN without overlap.
  """
  if method not in METHODS:
    raise ValueError(f"unknown BD-rate method {method!r}; known: {', '.join(METHODS)}")
  import bjontegaard
  ra, ma = _curve(rate_anchor, metric_anchor, "anchor")
  rt, mt = _curve(rate_test, metric_test, "test")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    value = bjontegaard.bd_psnr(ra, ma, rt, mt, method=method, require_matching_points=False,
                                min_overlap=0)
  return float(value)


def format_percent(value):
  """'−2.43 %'-style text for a table cell; 'n/a' for NaN or None."""
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "n/a"
  return f"{value:+.2f} %"
