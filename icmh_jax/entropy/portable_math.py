"""float64 exp, log, softplus, tanh, sigmoid and the normal CDF from IEEE basic operations only.

Coder tables must be bit-identical on the encoder's and the decoder's machine. numpy's own
transcendental ufuncs are not: `np.exp` and `np.tanh` take different SIMD code paths on
AVX-512, AVX2 and baseline CPUs and differ in the last bits. The functions here use only
+, −, ×, ÷ (correctly rounded by IEEE 754 on every CPU), floor, frexp/ldexp (exact) and
comparisons, in a fixed order, so their results depend on the inputs alone. They are accurate
to a few ulp, which is all the tables need.
"""

import math

import numpy as np

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that n·_LN2_HI is exact (fdlibm)
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_INV_FACTORIALS = [1.0 / math.factorial(k) for k in range(15)]
_SQRT_HALF = 0.7071067811865476
_INV_SQRT_PI = 0.5641895835477563


def exp(x) -> np.ndarray:
  """e^x, float64, elementwise (0 below −745, inf above 709.78)."""
  x = np.asarray(x, np.float64)
  big = x > 709.78
  x = np.clip(x, -746.0, 709.78)
  n = np.floor(x * _INV_LN2 + 0.5)
  r = (x - n * _LN2_HI) - n * _LN2_LO  # |r| ≤ 0.35: Taylor to degree 14 is exact to < 1e-18
  p = np.full(x.shape, _INV_FACTORIALS[14])
  for c in reversed(_INV_FACTORIALS[:14]):
    p = p * r + c
  # two ldexp steps keep 2^n representable when n is near the subnormal range
  n = n.astype(np.int64)
  half = n // 2
  out = np.ldexp(np.ldexp(p, half), n - half)
  return np.where(big, np.inf, out)


def log(x) -> np.ndarray:
  """ln x for x > 0, float64, elementwise."""
  x = np.asarray(x, np.float64)
  m, e = np.frexp(x)  # x = m·2^e, m in [0.5, 1)
  low = m < _SQRT_HALF
  m = np.where(low, m * 2.0, m)
  e = np.where(low, e - 1, e).astype(np.float64)
  f = (m - 1.0) / (m + 1.0)  # |f| ≤ 0.172: ln m = 2·atanh f
  f2 = f * f
  s = np.full(x.shape, 1.0 / 27.0)
  for k in range(25, 0, -2):
    s = s * f2 + 1.0 / k
  return e * _LN2_HI + (2.0 * f * s + e * _LN2_LO)


def log1p(u) -> np.ndarray:
  """ln(1 + u) for u > −1, float64, elementwise, accurate for tiny u."""
  u = np.asarray(u, np.float64)
  w = 1.0 + u
  # (w − 1) is exact, so ln(w)·u/(w − 1) corrects the rounding of 1 + u (Goldberg's trick)
  d = np.where(w == 1.0, 1.0, w - 1.0)
  return np.where(w == 1.0, u, log(w) * (u / d))


def softplus(x) -> np.ndarray:
  """ln(1 + e^x), float64, elementwise, without overflow."""
  x = np.asarray(x, np.float64)
  return np.maximum(x, 0.0) + log1p(exp(-np.abs(x)))


def tanh(x) -> np.ndarray:
  """tanh x, float64, elementwise."""
  x = np.asarray(x, np.float64)
  t = exp(-2.0 * np.abs(x))
  return np.copysign((1.0 - t) / (1.0 + t), x)


def sigmoid(x) -> np.ndarray:
  """1 / (1 + e^−x), float64, elementwise, accurate in both tails."""
  x = np.asarray(x, np.float64)
  t = exp(-np.abs(x))
  return np.where(x >= 0, 1.0 / (1.0 + t), t / (1.0 + t))


def erfc(y) -> np.ndarray:
  """Complementary error function for y ≥ 0, float64, elementwise."""
  y = np.asarray(y, np.float64)
  if np.any(y < 0):
    raise ValueError("portable erfc is defined here for y >= 0 only")
  y2 = y * y
  g = exp(-y2) * _INV_SQRT_PI
  # y < 3: erf y = (2/√π)·e^(−y²)·Σ_n (2y²)^n·y / (1·3·…·(2n+1)), all terms positive
  ys = np.minimum(y, 3.0)
  term, total = ys, ys
  for k in range(1, 90):
    term = term * (2.0 * ys * ys) / (2 * k + 1)
    total = total + term
  series = 1.0 - 2.0 * exp(-ys * ys) * _INV_SQRT_PI * total
  # y ≥ 3: continued fraction e^(−y²)/√π · 1/(y + ½/(y + 1/(y + (3/2)/(y + …))))
  yc = np.maximum(y, 3.0)
  frac = yc
  for k in range(60, 0, -1):
    frac = yc + (k / 2.0) / frac
  return np.where(y < 3.0, series, g / frac * (yc == y))


def ndtr(x) -> np.ndarray:
  """Standard normal CDF Φ(x), float64, elementwise, accurate in the lower tail."""
  x = np.asarray(x, np.float64)
  tail = 0.5 * erfc(np.abs(x) * _SQRT_HALF)
  return np.where(x <= 0, tail, 1.0 - tail)
