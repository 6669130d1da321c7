"""`icmh golden-check sam PATH.npz`: the Flax SAM v1 port against the PyTorch reference's goldens.

The model is built from the JSON (`model_config`, weights from the seed rule in `weights.specs`),
so any golden set of this format works. Rows: weights, preprocessing, encoder intermediates,
every prompt's embeddings / logits / IoUs / masks, every `unit/...` array, then the automatic mask
generator rows of `icmh_jax.golden.sam_amg.check_amg` when asked (`amg`). Everything runs
under `jax.default_matmul_precision("highest")`. Tolerances (reference/sam/README.md): rtol 1e-4
for embeddings and IoUs, atol 5e-4 for mask logits, masks equal up to near-zero logits.
"""

import hashlib
import json
import re

import jax
import numpy as np

from icmh_jax.convert.sam import apply_table_from_torch, from_torch, output_upscaling_rows
from icmh_jax.errors import IcmhError
from icmh_jax.golden import sam_amg
from icmh_jax.golden.report import GoldenReport
from icmh_jax.sam import image_encoder as ie
from icmh_jax.sam.mask_decoder import MaskDecoder, OutputUpscaling
from icmh_jax.sam.model import Sam, config_from_golden, param_shapes
from icmh_jax.sam.predictor import (SamPredictor, apply_coords, get_preprocess_shape,
                                    postprocess_masks, preprocess, resize_longest_side)
from icmh_jax.sam.prompt_encoder import PositionEmbeddingRandom
from icmh_jax.sam.transformer import TwoWayTransformer

LOGIT_ATOL = 5e-4
NEAR_ZERO = 1e-3


def rebuild_state_dict(specs) -> dict:
  """The README's weight rule: {key: float32 array in torch layout} from `weights.specs` rows."""
  sd = {}
  for s in specs:
    z = np.random.default_rng(s["seed"]).standard_normal(tuple(s["draw_shape"])).astype(np.float32)
    z = np.broadcast_to(z, tuple(s["shape"]))
    sd[s["key"]] = z * np.float32(s["scale"]) + np.float32(s["offset"])
  return sd


class _Arrays(dict):
  """The npz loaded into memory, with `.files` like np.load's NpzFile."""

  @property
  def files(self):
    return list(self.keys())


def _nhwc(a):
  return np.asarray(a).transpose(0, 2, 3, 1)


def _nchw(a):
  return np.asarray(a).transpose(0, 3, 1, 2)


def _rows(meta, key) -> list[int]:
  """Row indices a `..._rows` array holds, read from its description in the JSON index."""
  desc = meta["arrays"][key]["desc"]
  m = re.search(r"rows \[([\d,\s]+)\]", desc)
  if m is None:
    raise IcmhError(f"golden JSON: cannot read the row indices of {key} from {desc!r}")
  return [int(v) for v in m.group(1).split(",")]


def _close_atol(report, key, actual, expected, atol):
  """Passes when max|a - b| <= atol (reported relative to max|b| like every other row)."""
  scale = float(np.max(np.abs(expected))) or 1.0
  return report.close(key, actual, expected, rtol=atol / scale)


def _check_weights(meta, z, sd, report):
  bad = [s["key"] for s in meta["weights"]["specs"]
         if "sha256" in s and hashlib.sha256(sd[s["key"]].tobytes()).hexdigest() != s["sha256"]]
  report.check("weights/sha256", not bad, f"{len(bad)} keys differ {bad[:3]}" if bad else
               f"{len(sd)} keys rebuilt")
  key = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
  report.close("buffer/pe_gaussian_matrix", sd[key], z[f"buffer/{key}"], rtol=0.0)
  return sd


def _check_encoder_units(z, meta, params, report):
  u = meta["unit_tests"]
  ws = u["window_partition"]["window_size"]
  windows, _ = ie.window_partition(z["unit/window_partition/x"], ws)
  report.close("unit/window_partition", windows, z["unit/window_partition/windows"])
  for case in u["get_rel_pos"]:
    i = case["case"]
    out = ie.get_rel_pos(case["q_size"], case["k_size"], z[f"unit/get_rel_pos/{i}/rel_pos"])
    report.close(f"unit/get_rel_pos/{i}", out, z[f"unit/get_rel_pos/{i}/out"])
  a = u["add_decomposed_rel_pos"]
  out = ie.add_decomposed_rel_pos(
      *(z[f"unit/add_decomposed_rel_pos/{k}"] for k in ("attn", "q", "rel_pos_h", "rel_pos_w")),
      tuple(a["q_size"]), tuple(a["k_size"]))
  report.close("unit/add_decomposed_rel_pos", out, z["unit/add_decomposed_rel_pos/out"])
  enc = meta["model_config"]["image_encoder"]
  grid = enc["img_size"] // enc["patch_size"]
  for name in ("block_windowed", "block_windowed_padded", "block_global_relpos_interp"):
    b = u[name]
    block_idx = int(b["weights"].split(".")[2])
    block = ie.Block(enc["embed_dim"], b["num_heads"], enc["mlp_ratio"], enc["qkv_bias"],
                     enc["use_rel_pos"], b["window_size"], (grid, grid))
    y = block.apply({"params": params["image_encoder"][f"blocks_{block_idx}"]}, z[f"unit/{name}/x"])
    report.close(f"unit/{name}", y, z[f"unit/{name}/y"])


def _check_prompt_units(z, meta, params, config, report):
  pe = PositionEmbeddingRandom(config.prompt_embed_dim // 2)
  pe_params = {"params": params["prompt_encoder"]["pe_layer"]}
  for key in [k for k in z.files if k.startswith("unit/pe_random/with_coords_")]:
    h, w = (int(v) for v in key.rsplit("_", 1)[1].split("x"))
    out = pe.apply(pe_params, z["unit/pe_random/coords"], (h, w), method=pe.with_coords)
    report.close(key, out, z[key])
  for key in [k for k in z.files if k.startswith("unit/pe_random/grid_")]:
    h, w = (int(v) for v in key.rsplit("_", 1)[1].split("x"))
    grid = np.asarray(pe.apply(pe_params, (h, w), method=pe.grid))
    report.close(key, grid.transpose(2, 0, 1), z[key])
  sam = Sam(config)
  _, dense = sam.apply({"params": params}, masks=_nhwc(z["unit/mask_downscaling/x"]),
                       method=Sam.encode_prompts)
  report.close("unit/mask_downscaling", _nchw(dense), z["unit/mask_downscaling/y"])
  pp = z["unit/postprocess_masks/x"]
  pm = meta["unit_tests"]["postprocess_masks"]
  for h, w in pm["cases"]:
    y = postprocess_masks(pp, tuple(pm["input_size"]), (h, w), pm["img_size"])
    _close_atol(report, f"unit/postprocess_masks/{h}x{w}", y,
                z[f"unit/postprocess_masks/y_{h}x{w}"], LOGIT_ATOL)


def _check_decoder_units(z, meta, params, config, report):
  p = params["mask_decoder"]
  t = "unit/two_way_transformer/"
  tw = TwoWayTransformer(config.decoder_depth, config.prompt_embed_dim, config.decoder_num_heads,
                         config.decoder_mlp_dim)
  q, k = tw.apply({"params": p["transformer"]}, _nhwc(z[t + "image_embedding"]),
                  _nhwc(z[t + "image_pe"]), z[t + "point_embedding"])
  report.close(t + "queries", q, z[t + "queries"])
  report.close(t + "keys", k, z[t + "keys"])
  t = "unit/mask_decoder_small/"
  md = MaskDecoder(config.prompt_embed_dim, config.decoder_depth, config.decoder_num_heads,
                   config.decoder_mlp_dim, config.num_multimask_outputs, config.iou_head_depth,
                   config.iou_head_hidden_dim)
  masks, iou = md.apply({"params": p}, _nhwc(z[t + "image_embeddings"]), _nhwc(z[t + "image_pe"]),
                        z[t + "sparse"], _nhwc(z[t + "dense"]))
  _close_atol(report, t + "masks", masks, z[t + "masks"], LOGIT_ATOL)
  report.close(t + "iou", iou, z[t + "iou"])
  specs = meta["unit_tests"]["output_upscaling_iid"]["weights"]
  prefix = "unit/output_upscaling_iid/"
  sd = {"u." + k[len(prefix):]: v for k, v in rebuild_state_dict(specs).items()}
  up = apply_table_from_torch(sd, output_upscaling_rows([], "u", ()))
  y = OutputUpscaling(config.prompt_embed_dim).apply({"params": up}, _nhwc(z[prefix + "x"]))
  report.close("unit/output_upscaling_iid", _nchw(y), z[prefix + "y"])


def _check_resize(meta, report):
  r = meta["unit_tests"]["resize_longest_side"]
  shapes = [list(get_preprocess_shape(*c["in"], r["target_length"]))
            for c in r["get_preprocess_shape"]]
  report.check("unit/get_preprocess_shape", shapes == [c["out"] for c in r["get_preprocess_shape"]],
               f"{len(shapes)} shapes")
  ac = r["apply_coords"]
  report.close("unit/apply_coords", apply_coords(ac["in"], ac["original_size"], r["target_length"]),
               np.asarray(ac["out"]), rtol=1e-12)


def _check_image(z, meta, predictor, config, report):
  image = z["image"]
  resized = resize_longest_side(image, config.img_size)
  report.exact("input_resized_u8", resized, z["input_resized_u8"])
  x = _nchw(preprocess(resized, config))
  report.check("input_1024_sha256",
               hashlib.sha256(x.tobytes()).hexdigest() == meta["preprocess"]["input_1024_sha256"])
  report.close("input_1024_rows", x[:, :, _rows(meta, "input_1024_rows")], z["input_1024_rows"],
               rtol=0.0)
  inter = predictor.set_image(image, return_intermediates=True)
  report.close("encoder/patch_embed", inter["patch_tokens"][0], z["encoder/patch_embed"])
  for i in range(config.encoder_depth):
    if f"encoder/block{i}" in z.files:
      report.close(f"encoder/block{i}", inter[f"block_{i}"][0], z[f"encoder/block{i}"])
  report.close("encoder/image_embedding", _nchw(predictor.features), z["encoder/image_embedding"])
  dense_pe = Sam(config).apply({"params": predictor.params}, method=Sam.dense_pe)
  report.close("dense_pe_rows", _nchw(dense_pe)[:, :, _rows(meta, "dense_pe_rows")],
               z["dense_pe_rows"])


def _check_prompt(z, meta, prompt, predictor, config, report):
  name = prompt["name"]
  pre = f"prompt/{name}/"
  mask_input = z[pre + "mask_input"] if pre + "mask_input" in z.files else None
  out = predictor.predict_all(prompt["point_coords"], prompt["point_labels"], prompt["box"],
                              mask_input)
  if prompt["point_coords"] is not None:
    coords = apply_coords(prompt["point_coords"], predictor.original_size, config.img_size)
    report.close(pre + "point_coords_model", coords.astype(np.float32),
                 z[pre + "point_coords_model"], rtol=0.0)
  if prompt["box"] is not None:
    box = apply_coords(np.reshape(prompt["box"], (2, 2)), predictor.original_size, config.img_size)
    report.close(pre + "box_model", box.astype(np.float32).reshape(1, 4), z[pre + "box_model"],
                 rtol=0.0)
  report.close(pre + "sparse_embeddings", out["sparse"], z[pre + "sparse_embeddings"])
  if pre + "dense_embeddings" in z.files:
    report.close(pre + "dense_embeddings", _nchw(out["dense"]), z[pre + "dense_embeddings"])
  else:
    no_mask = predictor.params["prompt_encoder"]["no_mask_embed"].reshape(1, 1, 1, -1)
    report.check(pre + "dense_embeddings", bool(np.all(out["dense"] == no_mask)),
                 "no_mask_embed broadcast")
  _close_atol(report, pre + "lowres_logits", out["lowres"][0], z[pre + "lowres_logits"], LOGIT_ATOL)
  report.close(pre + "iou_predictions", out["iou"][0], z[pre + "iou_predictions"])
  upscaled = out["upscaled"][0]
  rows = _rows(meta, pre + "upscaled_logits_rows")
  _close_atol(report, pre + "upscaled_logits_rows", upscaled[:, rows],
              z[pre + "upscaled_logits_rows"], LOGIT_ATOL)
  w = upscaled.shape[-1]
  expected = np.unpackbits(z[pre + "masks_packed"], axis=-1)[..., :w].astype(bool)
  masks = upscaled > config.mask_threshold
  diff = masks != expected
  allowed = sum(prompt.get("near_zero_pixels", {}).get(str(NEAR_ZERO), [0]))
  ok = diff.sum() <= allowed and bool(np.all(np.abs(upscaled[diff]) < NEAR_ZERO))
  report.check(pre + "masks", ok, f"{int(diff.sum())} of {diff.size} pixels differ "
               f"(allowed: up to {allowed}, only where |logit| < {NEAR_ZERO})")


def check(npz_path, json_path, *, amg: bool = True) -> GoldenReport:
  """Compares the port with a SAM golden set; returns the report (rows + PASS/FAIL).

  Args:
    npz_path, json_path: the golden set.
    amg: also add the automatic-mask-generator rows (`golden.sam_amg`, minutes on a CPU).
  """
  meta = json.loads(open(json_path).read())
  report = GoldenReport("sam")
  with np.load(npz_path) as npz, jax.default_matmul_precision("highest"):
    z = _Arrays({k: npz[k] for k in npz.files})
    sd = _check_weights(meta, z, rebuild_state_dict(meta["weights"]["specs"]), report)
    config = config_from_golden(meta)
    for name in ("pixel_mean", "pixel_std"):
      report.close(f"buffer/{name}", np.asarray(getattr(config, name), np.float32).reshape(3, 1, 1),
                   z[f"buffer/{name}"], rtol=0.0)
    params = from_torch(sd, config, param_shapes(config))
    _check_resize(meta, report)
    _check_encoder_units(z, meta, params, report)
    _check_prompt_units(z, meta, params, config, report)
    _check_decoder_units(z, meta, params, config, report)
    predictor = SamPredictor(params, config, matmul_precision="highest")
    _check_image(z, meta, predictor, config, report)
    for prompt in meta["prompts"]:
      _check_prompt(z, meta, prompt, predictor, config, report)
    if amg:
      sam_amg.check_amg(z, meta, report, predictor)
  return report
