"""Metrics against pytorch-msssim's numbers (tests/reference/metrics.json) and analytic values."""

import json
import zlib

import numpy as np
import pytest
import skimage.data

from icmh_jax.evaluation import metrics


def _cases(reference_dir):
  """Regenerates the nine (photo, noisy photo) pairs with the JSON's recipe."""
  ref = json.loads((reference_dir / "metrics.json").read_text())
  cases = []
  for name in dict.fromkeys(c["image"].split("(")[0].split(".")[-1] for c in ref["cases"]):
    x = getattr(skimage.data, name)()[:256, :256, :3].astype(np.float32)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for sigma in (2.0, 10.0, 30.0):  # one generator per photo, sigmas drawn in this order
      y = np.clip(np.round(x + rng.normal(0, sigma, x.shape)), 0, 255).astype(np.float32)
      (want,) = [c for c in ref["cases"]
                 if c["image"].startswith(f"skimage.data.{name}(") and c["sigma"] == sigma]
      cases.append((x, y, want))
  assert len(cases) == len(ref["cases"]) == 9
  return cases


def test_psnr_ssim_ms_ssim_match_pytorch_msssim_on_nine_pairs(reference_dir):
  cases = _cases(reference_dir)
  x = np.stack([c[0] for c in cases])
  y = np.stack([c[1] for c in cases])
  got = dict(mse=metrics.mse(x, y), psnr_db=metrics.psnr(x, y, 255.0),
             ssim=metrics.ssim(x, y, 255.0), ms_ssim=metrics.ms_ssim(x, y, 255.0))
  for key, values in got.items():
    want = np.array([c[2][key] for c in cases])
    tol = 1e-4 * max(1.0, float(np.abs(want).max())) if key == "mse" else 1e-4
    np.testing.assert_allclose(np.asarray(values), want, rtol=0, atol=tol, err_msg=key)


def test_psnr_of_constant_error_is_analytic():
  x = np.full((2, 8, 8, 3), 0.5, np.float32)
  y = x + np.float32(0.1)
  np.testing.assert_allclose(metrics.psnr(x, y), [20.0, 20.0], atol=1e-4)


def test_identical_images_give_ssim_and_ms_ssim_one():
  x = np.random.default_rng(0).uniform(size=(176, 181, 3)).astype(np.float32)  # odd side pools
  assert float(metrics.ssim(x, x)) == pytest.approx(1.0, abs=1e-5)
  assert float(metrics.ms_ssim(x, x)) == pytest.approx(1.0, abs=1e-5)


def test_masked_psnr_only_sees_mask_pixels():
  x = np.zeros((16, 16, 3), np.float32)
  x_hat = np.full_like(x, 0.5)
  mask = np.zeros((16, 16), bool)
  mask[4, :] = True
  x_hat[4, :] = 0.01  # error 1e-2 on the mask, 0.5 elsewhere
  assert float(metrics.masked_psnr(x, x_hat, mask)) == pytest.approx(40.0, abs=1e-3)
  assert np.isnan(float(metrics.masked_psnr(x, x_hat, np.zeros_like(mask))))


def test_ms_ssim_refuses_images_too_small_for_five_scales():
  x = np.zeros((160, 200, 3), np.float32)
  with pytest.raises(ValueError, match="need > 160"):
    metrics.ms_ssim(x, x)


def test_mismatched_shapes_raise_value_error():
  with pytest.raises(ValueError, match="shapes differ"):
    metrics.psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
