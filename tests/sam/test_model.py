"""SAM v1 building blocks against the reference's unit golden vectors (reference/sam)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icmh_jax.convert.sam import apply_table_from_torch, from_torch, output_upscaling_rows
from icmh_jax.golden.sam import rebuild_state_dict
from icmh_jax.sam import image_encoder as ie
from icmh_jax.sam.mask_decoder import ConvTranspose2x2, OutputUpscaling
from icmh_jax.sam.model import config_from_golden
from icmh_jax.sam.prompt_encoder import PositionEmbeddingRandom


@pytest.fixture(scope="module")
def golden(reference_dir):
  meta = json.loads((reference_dir / "sam" / "sam_golden.json").read_text())
  with np.load(reference_dir / "sam" / "sam_golden.npz") as npz:
    z = {k: npz[k] for k in npz.files if k.startswith(("unit/", "buffer/"))}
  return meta, z


@pytest.fixture(scope="module")
def params(golden):
  meta, _ = golden
  return from_torch(rebuild_state_dict(meta["weights"]["specs"]), config_from_golden(meta))


def _nhwc(a):
  return np.asarray(a).transpose(0, 2, 3, 1)


@pytest.mark.parametrize("case", range(6))
def test_get_rel_pos_matches_reference_with_and_without_interpolation(golden, case):
  meta, z = golden
  c = meta["unit_tests"]["get_rel_pos"][case]
  with jax.default_matmul_precision("highest"):
    out = ie.get_rel_pos(c["q_size"], c["k_size"], z[f"unit/get_rel_pos/{case}/rel_pos"])
  np.testing.assert_allclose(out, z[f"unit/get_rel_pos/{case}/out"], rtol=0, atol=1e-5)


def test_rel_pos_shrink_uses_no_antialias(golden):
  _, z = golden
  table = z["unit/get_rel_pos/2/rel_pos"]  # 27 rows shrunk to 9: antialiasing would blur it
  blurred = jax.image.resize(table, (9, table.shape[1]), "linear", antialias=True)
  ours = ie.get_rel_pos(5, 5, table)
  wrong = np.asarray(blurred)[ie.rel_pos_index(5, 5)]
  assert np.abs(wrong - z["unit/get_rel_pos/2/out"]).max() > 0.1
  np.testing.assert_allclose(ours, z["unit/get_rel_pos/2/out"], atol=1e-5)


def test_add_decomposed_rel_pos_matches_reference(golden):
  _, z = golden
  out = ie.add_decomposed_rel_pos(
      *(z[f"unit/add_decomposed_rel_pos/{k}"] for k in ("attn", "q", "rel_pos_h", "rel_pos_w")),
      (3, 4), (6, 2))
  np.testing.assert_allclose(out, z["unit/add_decomposed_rel_pos/out"], atol=1e-5)


def test_window_partition_pads_with_zeros_and_unpartition_crops_back(golden):
  _, z = golden
  x = z["unit/window_partition/x"]
  windows, pad_hw = ie.window_partition(x, 14)
  np.testing.assert_array_equal(windows, z["unit/window_partition/windows"])
  assert pad_hw == (28, 28)
  np.testing.assert_array_equal(ie.window_unpartition(windows, 14, pad_hw, x.shape[1:3]), x)


@pytest.mark.parametrize("name,block_idx,window",
                         [("block_windowed_padded", 0, 14), ("block_global_relpos_interp", 1, 0)])
def test_encoder_block_matches_reference(golden, params, name, block_idx, window):
  _, z = golden
  block = ie.Block(64, 2, 4.0, True, True, window, (64, 64))
  with jax.default_matmul_precision("highest"):
    y = block.apply({"params": params["image_encoder"][f"blocks_{block_idx}"]}, z[f"unit/{name}/x"])
  np.testing.assert_allclose(y, z[f"unit/{name}/y"], rtol=0, atol=1e-4)


def test_random_fourier_pe_matches_reference_for_coords_and_grids(golden, params):
  _, z = golden
  pe = PositionEmbeddingRandom(128)
  v = {"params": params["prompt_encoder"]["pe_layer"]}
  with jax.default_matmul_precision("highest"):
    for h, w in ((1024, 1024), (683, 1024)):
      out = pe.apply(v, z["unit/pe_random/coords"], (h, w), method=pe.with_coords)
      np.testing.assert_allclose(out, z[f"unit/pe_random/with_coords_{h}x{w}"], atol=2e-5)
    for h, w in ((5, 7), (8, 8)):
      out = np.asarray(pe.apply(v, (h, w), method=pe.grid)).transpose(2, 0, 1)
      np.testing.assert_allclose(out, z[f"unit/pe_random/grid_{h}x{w}"], atol=2e-5)


def _iid_upscaling_params(meta):
  specs = meta["unit_tests"]["output_upscaling_iid"]["weights"]
  prefix = "unit/output_upscaling_iid/"
  sd = {"u." + k[len(prefix):]: v for k, v in rebuild_state_dict(specs).items()}
  return apply_table_from_torch(sd, output_upscaling_rows([], "u", ()))


def test_transposed_conv_with_iid_taps_matches_reference(golden):
  meta, z = golden
  up = _iid_upscaling_params(meta)
  with jax.default_matmul_precision("highest"):
    y = OutputUpscaling(256).apply({"params": up}, _nhwc(z["unit/output_upscaling_iid/x"]))
  np.testing.assert_allclose(np.asarray(y).transpose(0, 3, 1, 2), z["unit/output_upscaling_iid/y"],
                             atol=1e-5)


def test_flipped_transposed_conv_taps_would_be_caught(golden):
  meta, z = golden
  up = _iid_upscaling_params(meta)
  for layer in ("output_upscaling_0", "output_upscaling_3"):
    up[layer]["kernel"] = up[layer]["kernel"][::-1, ::-1]
  y = OutputUpscaling(256).apply({"params": up}, _nhwc(z["unit/output_upscaling_iid/x"]))
  assert np.abs(np.asarray(y).transpose(0, 3, 1, 2) - z["unit/output_upscaling_iid/y"]).max() > 1e-2


def test_transposed_conv_places_tap_ab_at_2i_plus_a_2j_plus_b():
  kernel = jnp.arange(2 * 2 * 1 * 1, dtype=jnp.float32).reshape(2, 2, 1, 1) + 1.0
  x = jnp.array([[[[1.0], [10.0]]]])  # [1, 1, 2, 1]
  y = ConvTranspose2x2(1).apply({"params": {"kernel": kernel, "bias": jnp.zeros(1)}}, x)
  np.testing.assert_array_equal(y[0, :, :, 0], [[1, 2, 10, 20], [3, 4, 30, 40]])


def test_encoder_layernorm_uses_eps_1e6_and_decoder_1e5():
  from icmh_jax.sam import transformer
  assert ie.LN_EPS == 1e-6 and transformer.LN_EPS == 1e-5
  x = jnp.array([[0.0, 1e-3]])  # variance 2.5e-7: the eps choice moves the output a lot
  y = ie.layer_norm("n").apply({"params": {"scale": jnp.ones(2), "bias": jnp.zeros(2)}}, x)
  expected = (x - 5e-4) / np.sqrt(2.5e-7 + 1e-6)
  np.testing.assert_allclose(y, expected, rtol=1e-4)


def test_gelu_is_the_exact_erf_form():
  from scipy.special import erf
  x = np.linspace(-4, 4, 33, dtype=np.float32)
  np.testing.assert_allclose(ie.gelu(x), 0.5 * x * (1 + erf(x / np.sqrt(2))), atol=1e-6)
