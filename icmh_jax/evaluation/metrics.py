"""Image quality metrics: PSNR, SSIM, MS-SSIM, and PSNR on the SA-ICM edge mask.

SSIM and MS-SSIM follow the recipe of pytorch-msssim 1.0 (the package the learned-compression
literature reports with, and the one `tests/reference/metrics.json` was made with): an 11-tap
Gaussian window with sigma 1.5 applied separably as a valid convolution (no padding), K1 = 0.01,
K2 = 0.03, per-channel means averaged over RGB, MS-SSIM over five scales with weights
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average pooling between scales with one pixel of
zero padding (counted in the average) on odd sides, and negative contrast terms clipped at zero.
dm-pix has PSNR and SSIM but no MS-SSIM, so the shared Gaussian machinery lives here once.

All functions take NHWC images `[..., H, W, C]` (any leading batch dims, possibly none) and
return one value per image, shape `[...]`. They are pure `jnp` code, so they jit and differentiate.
"""

import jax
import jax.numpy as jnp
import numpy as np

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WIN_SIZE = 11
WIN_SIGMA = 1.5
K1, K2 = 0.01, 0.03


def _check_pair(x, y, name):
  if x.shape != y.shape:
    raise ValueError(f"{name}: image shapes differ: {x.shape} vs {y.shape}")
  if x.ndim < 3:
    raise ValueError(f"{name}: expected [..., H, W, C] images, got shape {x.shape}")


def mse(x, y):
  """Mean squared error per image.

  Args:
    x, y: [..., H, W, C] arrays.

  Returns:
    [...] float32, the mean of (x - y)² over H, W and C.
  """
  _check_pair(x, y, "mse")
  d = jnp.asarray(x, jnp.float32) - jnp.asarray(y, jnp.float32)
  return jnp.mean(d * d, axis=(-3, -2, -1))


def psnr(x, y, data_range=1.0):
  """Peak signal-to-noise ratio in dB, 10·log10(data_range² / mse), per image.

  Args:
    x, y: [..., H, W, C] arrays on the scale [0, data_range].
    data_range: the peak value (1.0 for images in [0, 1], 255.0 for 8-bit values).

  Returns:
    [...] float32 PSNR in dB (inf for identical images).
  """
  return 10.0 * jnp.log10(data_range**2 / mse(x, y))


def masked_psnr(x, x_hat, mask, data_range=1.0):
  """PSNR over the pixels where `mask` is set: the machine layer's metric on the edge map m.

  The mse is Σ m·(x − x̂)² / (C · Σ m), i.e. the mean over masked pixels and all channels, the
  distortion term of the SA-ICM loss (eq. 1) restricted to the edge pixels it trains on.

  Args:
    x, x_hat: [..., H, W, C] images on [0, data_range].
    mask: [..., H, W] boolean or {0, 1} edge map.
    data_range: the peak value.

  Returns:
    [...] float32 PSNR in dB; NaN for an image whose mask is empty.
  """
  _check_pair(x, x_hat, "masked_psnr")
  if mask.shape != x.shape[:-1]:
    raise ValueError(f"masked_psnr: mask shape {mask.shape} does not match image {x.shape[:-1]}")
  m = jnp.asarray(mask, jnp.float32)[..., None]
  d = jnp.asarray(x, jnp.float32) - jnp.asarray(x_hat, jnp.float32)
  count = jnp.sum(m, axis=(-3, -2, -1)) * x.shape[-1]
  err = jnp.sum(m * d * d, axis=(-3, -2, -1)) / count
  return jnp.where(count > 0, 10.0 * jnp.log10(data_range**2 / err), jnp.nan)


def gaussian_window(size=WIN_SIZE, sigma=WIN_SIGMA):
  """The normalised 1-D Gaussian taps, centred (coords −size//2 … size//2), float32 [size]."""
  coords = np.arange(size, dtype=np.float32) - size // 2
  g = np.exp(-(coords**2) / np.float32(2 * sigma**2))
  return (g / g.sum()).astype(np.float32)


def _filter(v, win):
  """Separable valid Gaussian filter of [N, H, W, C] over H then W, each channel alone.

  Like pytorch-msssim, an axis shorter than the window is left unfiltered.
  """
  n = win.shape[0]
  for axis in (1, 2):
    if v.shape[axis] < n:
      continue
    length = v.shape[axis] - n + 1
    taps = [win[i] * jax.lax.slice_in_dim(v, i, i + length, axis=axis) for i in range(n)]
    v = sum(taps[1:], taps[0])
  return v


# Jitted: run op by op, the 11-tap filters dispatch (and compile) hundreds of tiny programs.
@jax.jit
def _ssim_and_cs(x, y, data_range, win):
  """Per-channel SSIM and contrast-structure means: [N, H, W, C] -> ([N, C], [N, C])."""
  c1 = (K1 * data_range) ** 2
  c2 = (K2 * data_range) ** 2
  mu1, mu2 = _filter(x, win), _filter(y, win)
  mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
  sigma1_sq = _filter(x * x, win) - mu1_sq
  sigma2_sq = _filter(y * y, win) - mu2_sq
  sigma12 = _filter(x * y, win) - mu12
  cs_map = (2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
  ssim_map = (2 * mu12 + c1) / (mu1_sq + mu2_sq + c1) * cs_map
  return jnp.mean(ssim_map, axis=(1, 2)), jnp.mean(cs_map, axis=(1, 2))


def _flatten(x, y, name):
  _check_pair(x, y, name)
  lead = x.shape[:-3]
  x = jnp.asarray(x, jnp.float32).reshape((-1,) + x.shape[-3:])
  y = jnp.asarray(y, jnp.float32).reshape((-1,) + y.shape[-3:])
  return x, y, lead


def ssim(x, y, data_range=1.0):
  """Structural similarity (Gaussian window, valid convolution), averaged over channels.

  Args:
    x, y: [..., H, W, C] images on [0, data_range].
    data_range: the peak value.

  Returns:
    [...] float32 SSIM.
  """
  x, y, lead = _flatten(x, y, "ssim")
  s, _ = _ssim_and_cs(x, y, data_range, jnp.asarray(gaussian_window()))
  return jnp.mean(s, axis=-1).reshape(lead)


@jax.jit
def _avg_pool2(v):
  """2x2 average pooling, stride 2; an odd side gets one zero pixel each side, counted."""
  pad = [(0, 0)] + [(s % 2, s % 2) for s in v.shape[1:3]] + [(0, 0)]
  v = jnp.pad(v, pad)
  h, w = v.shape[1] // 2 * 2, v.shape[2] // 2 * 2
  v = v[:, :h, :w]
  return 0.25 * (v[:, 0::2, 0::2] + v[:, 1::2, 0::2] + v[:, 0::2, 1::2] + v[:, 1::2, 1::2])


def ms_ssim(x, y, data_range=1.0, weights=MS_SSIM_WEIGHTS):
  """Multi-scale SSIM (Wang et al. 2003) with pytorch-msssim's recipe, averaged over channels.

  Per channel: Π_{i<L} relu(cs_i)^{w_i} · relu(ssim_L)^{w_L}, then the mean over channels.

  Args:
    x, y: [..., H, W, C] images on [0, data_range]; the smaller side must exceed
      (11 − 1)·2^(L−1) = 160 pixels for the default five scales.
    data_range: the peak value.
    weights: per-scale exponents; their count is the number of scales L.

  Returns:
    [...] float32 MS-SSIM.

  Raises:
    ValueError: if the images are too small for the number of scales.
  """
  x, y, lead = _flatten(x, y, "ms_ssim")
  levels = len(weights)
  min_side = (WIN_SIZE - 1) * 2 ** (levels - 1)
  if min(x.shape[1:3]) <= min_side:
    raise ValueError(f"ms_ssim: image side {min(x.shape[1:3])} too small for {levels} scales; "
                     f"need > {min_side} pixels")
  win = jnp.asarray(gaussian_window())
  terms = []
  for i in range(levels):
    s, cs = _ssim_and_cs(x, y, data_range, win)
    if i < levels - 1:
      terms.append(jax.nn.relu(cs))
      x, y = _avg_pool2(x), _avg_pool2(y)
  terms.append(jax.nn.relu(s))
  w = jnp.asarray(weights, jnp.float32)[:, None, None]
  val = jnp.prod(jnp.stack(terms) ** w, axis=0)
  return jnp.mean(val, axis=-1).reshape(lead)
