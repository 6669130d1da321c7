"""SAM state_dict <-> Flax params: exact round trips, layouts, strict key sets, official shapes."""

import json

import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from icmh_jax.convert import sam as convert
from icmh_jax.errors import CheckpointError
from icmh_jax.golden.sam import rebuild_state_dict
from icmh_jax.sam.model import config_from_golden, get_config, param_shapes


@pytest.fixture(scope="module")
def golden_sd(reference_dir):
  meta = json.loads((reference_dir / "sam" / "sam_golden.json").read_text())
  return config_from_golden(meta), rebuild_state_dict(meta["weights"]["specs"])


def test_state_dict_round_trip_is_exact(golden_sd):
  config, sd = golden_sd
  back = convert.to_torch(convert.from_torch(sd, config, param_shapes(config)), config)
  assert sorted(back) == sorted(sd)
  for k in sd:
    np.testing.assert_array_equal(back[k], sd[k], err_msg=k)


def test_params_round_trip_is_exact(golden_sd):
  config, sd = golden_sd
  params = convert.from_torch(sd, config)
  again = convert.from_torch(convert.to_torch(params, config), config)
  flat, flat2 = flatten_dict(params), flatten_dict(again)
  assert flat.keys() == flat2.keys()
  for k in flat:
    np.testing.assert_array_equal(flat[k], flat2[k])


def test_layouts_follow_the_transpose_rules(golden_sd):
  config, sd = golden_sd
  p = convert.from_torch(sd, config)
  qkv = sd["image_encoder.blocks.0.attn.qkv.weight"]  # Linear (out, in) -> (in, out)
  np.testing.assert_array_equal(p["image_encoder"]["blocks_0"]["attn"]["qkv"]["kernel"], qkv.T)
  w = sd["image_encoder.neck.2.weight"]  # Conv2d (out, in, kh, kw) -> (kh, kw, in, out)
  np.testing.assert_array_equal(p["image_encoder"]["neck_2"]["kernel"][1, 2, 5, 7], w[7, 5, 1, 2])
  t = sd["mask_decoder.output_upscaling.0.weight"]  # ConvT (in, out, kh, kw) -> (kh, kw, in, out)
  k = p["mask_decoder"]["upscaling"]["output_upscaling_0"]["kernel"]
  np.testing.assert_array_equal(k.transpose(2, 3, 0, 1), t)
  np.testing.assert_array_equal(p["image_encoder"]["blocks_1"]["norm2"]["scale"],
                                sd["image_encoder.blocks.1.norm2.weight"])


def test_missing_and_unexpected_keys_are_listed(golden_sd):
  config, sd = golden_sd
  bad = dict(sd)
  del bad["mask_decoder.iou_token.weight"]
  bad["mask_decoder.extra.weight"] = np.zeros(3, np.float32)
  with pytest.raises(CheckpointError, match=r"1 missing keys \['mask_decoder.iou_token.weight'\]"
                     r".*1 unexpected keys \['mask_decoder.extra.weight'\]"):
    convert.from_torch(bad, config)


def test_pixel_buffers_in_a_checkpoint_are_ignored(golden_sd):
  config, sd = golden_sd
  extra = dict(sd, pixel_mean=np.zeros((3, 1, 1), np.float32), pixel_std=np.ones((3, 1, 1)))
  params = convert.from_torch(extra, config)
  assert "pixel_mean" not in flatten_dict(params, sep="/")


def test_shape_mismatch_names_the_key(golden_sd):
  config, sd = golden_sd
  vit_b = get_config("vit_b")
  key = "image_encoder.blocks.0.attn.qkv.weight"
  with pytest.raises(CheckpointError, match=key):
    convert.from_torch(_resized(sd, key), config, param_shapes(config))
  with pytest.raises(CheckpointError, match="missing keys"):
    convert.from_torch(sd, vit_b, param_shapes(vit_b))


def _resized(sd, key):
  out = dict(sd)
  out[key] = np.zeros((sd[key].shape[0], sd[key].shape[1] + 1), np.float32)
  return out


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_key_table_covers_every_flax_parameter_once(name):
  config = get_config(name)
  shapes = flatten_dict(param_shapes(config))
  paths = [path for _, path, _ in convert.key_table(config)]
  assert len(paths) == len(set(paths))
  assert set(paths) == set(shapes)


def test_vit_b_torch_shapes_are_the_official_ones():
  config = get_config("vit_b")
  zeros = jax.tree.map(lambda s: np.zeros(s.shape, np.float32), param_shapes(config))
  sd = convert.to_torch(zeros, config)
  assert len(sd) == len(convert.key_table(config))
  # Official sam_vit_b key shapes (segment-anything build_sam_vit_b).
  assert sd["image_encoder.pos_embed"].shape == (1, 64, 64, 768)
  assert sd["image_encoder.patch_embed.proj.weight"].shape == (768, 3, 16, 16)
  assert sd["image_encoder.blocks.0.attn.rel_pos_h"].shape == (27, 64)
  assert sd["image_encoder.blocks.2.attn.rel_pos_h"].shape == (127, 64)
  assert sd["image_encoder.blocks.11.attn.qkv.weight"].shape == (2304, 768)
  assert sd["image_encoder.neck.2.weight"].shape == (256, 256, 3, 3)
  assert sd["mask_decoder.output_upscaling.0.weight"].shape == (256, 64, 2, 2)
  assert sd["mask_decoder.transformer.layers.1.cross_attn_token_to_image.q_proj.weight"].shape == (
      128, 256)
  assert sd["mask_decoder.iou_prediction_head.layers.2.weight"].shape == (4, 256)



def test_converted_params_directory_restores_params_and_config(golden_sd, tmp_path):
  config, sd = golden_sd
  params = convert.from_torch(sd, config)
  convert.save_converted(tmp_path / "sam", params, config, source="golden")
  restored, restored_config = convert.load_converted(tmp_path / "sam")
  assert restored_config == config
  back = convert.to_torch(restored, restored_config)
  for k in sd:
    np.testing.assert_array_equal(back[k], sd[k], err_msg=k)


def test_pth_checkpoint_converts_through_torch(golden_sd, tmp_path):
  torch = pytest.importorskip("torch")
  from icmh_jax.convert import pth
  config, sd = golden_sd
  torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()},
             tmp_path / "sam.pth")
  params = convert.from_torch(pth.load_pth(tmp_path / "sam.pth"), config)
  back = convert.to_torch(params, config)
  for k in sd:
    np.testing.assert_array_equal(back[k], sd[k], err_msg=k)


def test_cli_convert_sam_reports_a_size_mismatch_and_exits_1(golden_sd, tmp_path, capsys):
  from icmh_jax import cli
  _, sd = golden_sd
  np.savez(tmp_path / "tiny.npz", **sd)  # the tiny golden model is not a vit_b checkpoint
  status = cli.main(["convert", "sam", str(tmp_path / "tiny.npz"), str(tmp_path / "out"),
                     "--sam-config", "vit_b"])
  err = capsys.readouterr().err
  assert status == 1
  assert "missing keys ['image_encoder.blocks.10.attn.proj.bias'" in err
  assert not (tmp_path / "out").exists()
