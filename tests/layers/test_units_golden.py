"""Our layers against the PyTorch LIC-TCM module unit tests (`unit/<name>/...` of the golden set)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icmh_jax import layers
from icmh_jax.golden.report import GoldenReport
from icmh_jax.golden.tcm_units import check_units


@pytest.fixture(scope="module")
def unit_report(reference_dir):
  d = reference_dir / "tcm"
  report = GoldenReport("tcm")
  with jax.default_matmul_precision("highest"):
    meta = json.loads((d / "tcm_golden.json").read_text())
    check_units(report, np.load(d / "tcm_golden.npz"), meta)
  return report


@pytest.mark.parametrize("unit", [
    "ctb_w_win8", "ctb_sw_win8", "ctb_sw_win4_8x12", "wmsa_w_win8_16x16", "wmsa_sw_win8_16x24",
    "wmsa_sw_win4_8x12", "swatten_48_inter32", "rbws_16to32_s2", "rbws_16to32_s2_odd",
    "rbu_32to16_x2", "subpel_32to8_x2", "conv3x3_s2_16to24", "conv1x1_s2_16to24",
    "tcmconv_k5_s2_16to24", "gdn_16", "igdn_16", "gelu"])
def test_layer_matches_pytorch_unit_golden(unit_report, unit):
  rows = [r for r in unit_report.rows if r.name.startswith(f"unit/{unit}/")]
  assert rows, f"no rows for {unit}"
  failed = [(r.name, r.rel, r.note) for r in rows if not r.passed]
  assert not failed, failed


def test_pixel_shuffle_follows_pytorch_index_formula():
  r, c, h, w = 2, 3, 2, 3
  x = np.arange(h * w * c * r * r, dtype=np.float32).reshape(1, h, w, c * r * r)
  out = np.asarray(layers.pixel_shuffle(jnp.asarray(x), r))
  for ci in range(c):
    for i in range(r):
      for j in range(r):
        np.testing.assert_array_equal(out[0, i::r, j::r, ci], x[0, :, :, ci * r * r + i * r + j])


@pytest.mark.parametrize("shifted", [False, True])
def test_window_attention_pads_maps_to_the_window_and_crops_back(shifted):
  """A 12x12 map with window 8 equals the zero-padded 16x16 map cropped (our documented rule)."""
  attn = layers.WindowAttention(16, 8, 8, shifted)
  x = jax.random.normal(jax.random.PRNGKey(1), (1, 12, 12, 16))
  params = attn.init(jax.random.PRNGKey(2), x)
  padded = jnp.pad(x, ((0, 0), (0, 4), (0, 4), (0, 0)))
  np.testing.assert_allclose(attn.apply(params, x), attn.apply(params, padded)[:, :12, :12],
                             rtol=0, atol=1e-6)
  tiny = attn.apply(params, x[:, :4, :4])  # smaller than one window: still runs, finite
  assert tiny.shape == (1, 4, 4, 16) and bool(jnp.all(jnp.isfinite(tiny)))
