"""portable_math: accurate against numpy/scipy, and independent of numpy's SIMD code paths."""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.special as sp

from icmh_jax.entropy import gaussian, portable_math as pm, tables


def _inputs():
  rng = np.random.default_rng(0)
  return np.concatenate([rng.normal(0, 10, 20_000), rng.uniform(-740, 705, 2_000),
                         [0.0, -0.0, 1e-300, -1e-300, 1e-12, -1e-12, 700.0, -700.0]])


def _rel(a, b):
  finite = np.isfinite(b) & (b != 0)
  return np.max(np.abs(a[finite] - b[finite]) / np.abs(b[finite]))


def test_elementary_functions_match_numpy_within_a_few_ulp():
  x = _inputs()
  assert _rel(pm.exp(x), np.exp(x)) < 4e-15
  assert _rel(pm.log(np.abs(x) + 1e-300), np.log(np.abs(x) + 1e-300)) < 1e-15
  assert _rel(pm.softplus(x), np.logaddexp(0.0, x)) < 4e-15
  assert np.max(np.abs(pm.tanh(x) - np.tanh(x))) < 4e-16
  assert _rel(pm.sigmoid(x), sp.expit(x)) < 4e-15
  u = np.concatenate([10.0 ** np.linspace(-300, 3, 1000), -np.linspace(0, 0.999, 100)])
  assert _rel(pm.log1p(u), np.log1p(u)) < 1e-15
  assert pm.exp(np.array([-800.0]))[0] == 0.0 and np.isinf(pm.exp(np.array([710.0]))[0])


def test_normal_cdf_matches_scipy_including_the_far_lower_tail():
  x = np.linspace(-37, 37, 20_001)
  ref = sp.ndtr(x)
  assert np.max(np.abs(pm.ndtr(x) - ref) / np.maximum(ref, 1e-300)) < 1e-10
  y = np.linspace(0, 26, 5_001)
  assert _rel(pm.erfc(y), sp.erfc(y)) < 1e-10
  with pytest.raises(ValueError, match="y >= 0"):
    pm.erfc(np.array([-1.0]))


def test_gaussian_tables_are_the_scipy_distribution():
  g = tables.gaussian_tables(gaussian.scale_table())
  centers = tables.gaussian_pmf_centers(gaussian.scale_table())
  for k in (0, 20, 63):
    s, c = float(gaussian.scale_table()[k]), centers[k]
    v = np.abs(np.arange(-c, c + 1.0))
    ref = np.maximum(sp.ndtr((0.5 - v) / s) - sp.ndtr((-0.5 - v) / s), tables.PROBABILITY_FLOOR)
    np.testing.assert_allclose(g.pmfs[k, :2 * c + 1], ref, rtol=1e-9, atol=1e-15)


_CHILD = r"""
import hashlib, sys, numpy as np
from icmh_jax.entropy import portable_math as pm
x = np.random.default_rng(0).normal(0, 10, 50_000)
out = [f(x) for f in (pm.exp, pm.softplus, pm.tanh, pm.sigmoid, pm.ndtr)] + [np.exp(x), np.tanh(x)]
print(" ".join(hashlib.sha256(a.tobytes()).hexdigest()[:16] for a in out))
"""


def test_results_do_not_depend_on_numpy_simd_dispatch():
  try:
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
  except ImportError:
    pytest.skip("numpy does not expose its CPU dispatch table")
  enabled = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
  if not enabled:
    pytest.skip("this CPU has no optional SIMD paths to switch off")
  run = lambda env: subprocess.run([sys.executable, "-c", _CHILD], env=env, check=True,
                                   capture_output=True, text=True, timeout=60).stdout.split()
  here = run(dict(os.environ))
  narrowed = run(dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(enabled)))
  # ours agree bit for bit; numpy's own exp and tanh (the last two) differ on AVX-512 machines
  assert here[:5] == narrowed[:5]
