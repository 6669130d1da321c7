"""SAM v1 official state_dict <-> Flax params of `icmh_jax.sam.model.Sam`, both ways.

The key table is built from the config (never from one layer's position): each row is
(torch key, Flax path, rule). Rules: `linear` (out, in) <-> kernel (in, out); `conv`
(out, in, kh, kw) <-> (kh, kw, in, out); `conv_t` ConvTranspose2d (in, out, kh, kw) <->
(kh, kw, in, out), no tap flip (see `ConvTranspose2x2`); `copy` for everything else (biases,
LayerNorm weight -> scale, embeddings, pos_embed (1, H, W, C) channels-last in both, rel-pos tables
(2*size-1, head_dim), the PE Gaussian matrix (2, 128)). `pixel_mean` / `pixel_std` are
non-persistent buffers held by the config, ignored when a checkpoint carries them.
"""

import dataclasses

import numpy as np

from icmh_jax.errors import CheckpointError
from icmh_jax.sam.model import SamConfig

_IGNORED = ("pixel_mean", "pixel_std")
_TO_FLAX = {"linear": (1, 0), "conv": (2, 3, 1, 0), "conv_t": (2, 3, 0, 1)}
_TO_TORCH = {"linear": (1, 0), "conv": (3, 2, 0, 1), "conv_t": (2, 3, 0, 1)}


def _dense(rows, torch_prefix, flax_path, bias=True):
  rows.append((f"{torch_prefix}.weight", flax_path + ("kernel",), "linear"))
  if bias:
    rows.append((f"{torch_prefix}.bias", flax_path + ("bias",), "copy"))


def _norm(rows, torch_prefix, flax_path):
  rows.append((f"{torch_prefix}.weight", flax_path + ("scale",), "copy"))
  rows.append((f"{torch_prefix}.bias", flax_path + ("bias",), "copy"))


def _conv(rows, torch_prefix, flax_path, rule="conv", bias=True):
  rows.append((f"{torch_prefix}.weight", flax_path + ("kernel",), rule))
  if bias:
    rows.append((f"{torch_prefix}.bias", flax_path + ("bias",), "copy"))


def _image_encoder_rows(rows, config: SamConfig):
  t, f = "image_encoder", ("image_encoder",)
  _conv(rows, f"{t}.patch_embed.proj", f + ("patch_embed",))
  rows.append((f"{t}.pos_embed", f + ("pos_embed",), "copy"))
  for i in range(config.encoder_depth):
    tb, fb = f"{t}.blocks.{i}", f + (f"blocks_{i}",)
    _norm(rows, f"{tb}.norm1", fb + ("norm1",))
    _dense(rows, f"{tb}.attn.qkv", fb + ("attn", "qkv"))
    _dense(rows, f"{tb}.attn.proj", fb + ("attn", "proj"))
    rows.append((f"{tb}.attn.rel_pos_h", fb + ("attn", "rel_pos_h"), "copy"))
    rows.append((f"{tb}.attn.rel_pos_w", fb + ("attn", "rel_pos_w"), "copy"))
    _norm(rows, f"{tb}.norm2", fb + ("norm2",))
    _dense(rows, f"{tb}.mlp.lin1", fb + ("lin1",))
    _dense(rows, f"{tb}.mlp.lin2", fb + ("lin2",))
  _conv(rows, f"{t}.neck.0", f + ("neck_0",), bias=False)
  _norm(rows, f"{t}.neck.1", f + ("neck_1",))
  _conv(rows, f"{t}.neck.2", f + ("neck_2",), bias=False)
  _norm(rows, f"{t}.neck.3", f + ("neck_3",))


def _prompt_encoder_rows(rows):
  t, f = "prompt_encoder", ("prompt_encoder",)
  rows.append((f"{t}.pe_layer.positional_encoding_gaussian_matrix",
               f + ("pe_layer", "positional_encoding_gaussian_matrix"), "copy"))
  for i in range(4):
    rows.append((f"{t}.point_embeddings.{i}.weight", f + (f"point_embeddings_{i}",), "copy"))
  rows.append((f"{t}.not_a_point_embed.weight", f + ("not_a_point_embed",), "copy"))
  rows.append((f"{t}.no_mask_embed.weight", f + ("no_mask_embed",), "copy"))
  for i in (0, 3, 6):
    _conv(rows, f"{t}.mask_downscaling.{i}", f + (f"mask_downscaling_{i}",))
  for i in (1, 4):
    _norm(rows, f"{t}.mask_downscaling.{i}", f + (f"mask_downscaling_{i}",))


def _attention_rows(rows, torch_prefix, flax_path):
  for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
    _dense(rows, f"{torch_prefix}.{proj}", flax_path + (proj,))


def _mask_decoder_rows(rows, config: SamConfig):
  t, f = "mask_decoder", ("mask_decoder",)
  tt, ft = f"{t}.transformer", f + ("transformer",)
  for i in range(config.decoder_depth):
    tl, fl = f"{tt}.layers.{i}", ft + (f"layers_{i}",)
    for name in ("self_attn", "cross_attn_token_to_image", "cross_attn_image_to_token"):
      _attention_rows(rows, f"{tl}.{name}", fl + (name,))
    for n in range(1, 5):
      _norm(rows, f"{tl}.norm{n}", fl + (f"norm{n}",))
    _dense(rows, f"{tl}.mlp.lin1", fl + ("lin1",))
    _dense(rows, f"{tl}.mlp.lin2", fl + ("lin2",))
  _attention_rows(rows, f"{tt}.final_attn_token_to_image", ft + ("final_attn_token_to_image",))
  _norm(rows, f"{tt}.norm_final_attn", ft + ("norm_final_attn",))
  rows.append((f"{t}.iou_token.weight", f + ("iou_token",), "copy"))
  rows.append((f"{t}.mask_tokens.weight", f + ("mask_tokens",), "copy"))
  output_upscaling_rows(rows, f"{t}.output_upscaling", f + ("upscaling",))
  for i in range(config.num_multimask_outputs + 1):
    for j in range(3):
      _dense(rows, f"{t}.output_hypernetworks_mlps.{i}.layers.{j}",
             f + (f"output_hypernetworks_mlps_{i}", f"layers_{j}"))
  for j in range(config.iou_head_depth):
    _dense(rows, f"{t}.iou_prediction_head.layers.{j}", f + ("iou_prediction_head", f"layers_{j}"))


def output_upscaling_rows(rows, torch_prefix: str, flax_path: tuple):
  """Rows of an `output_upscaling` Sequential (also used by the golden's i.i.d.-tap unit test)."""
  _conv(rows, f"{torch_prefix}.0", flax_path + ("output_upscaling_0",), rule="conv_t")
  _norm(rows, f"{torch_prefix}.1", flax_path + ("output_upscaling_1",))
  _conv(rows, f"{torch_prefix}.3", flax_path + ("output_upscaling_3",), rule="conv_t")
  return rows


def key_table(config: SamConfig) -> list[tuple[str, tuple[str, ...], str]]:
  """Every (torch key, Flax path, rule) of a SAM v1 model with this config."""
  rows = []
  _image_encoder_rows(rows, config)
  _prompt_encoder_rows(rows)
  _mask_decoder_rows(rows, config)
  return rows


def apply_table_from_torch(state_dict: dict, rows) -> dict:
  """Maps torch arrays to a nested Flax params dict with the given rows; strict on key sets."""
  known = {r[0] for r in rows}
  missing = sorted(k for k in known if k not in state_dict)
  unexpected = sorted(k for k in state_dict if k not in known and k not in _IGNORED)
  if missing or unexpected:
    raise CheckpointError(
        f"SAM state_dict does not match the config: {len(missing)} missing keys "
        f"{missing[:8]}{' ...' if len(missing) > 8 else ''}, {len(unexpected)} unexpected keys "
        f"{unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
  params = {}
  for key, path, rule in rows:
    a = np.asarray(state_dict[key], np.float32)
    if rule in _TO_FLAX:
      a = a.transpose(_TO_FLAX[rule])
    node = params
    for p in path[:-1]:
      node = node.setdefault(p, {})
    node[path[-1]] = a
  return params


def from_torch(state_dict: dict, config: SamConfig, expected_shapes=None) -> dict:
  """Official SAM state_dict (numpy or torch arrays, torch layout) -> Flax params.

  Args:
    state_dict: {torch key: array}.
    config: the SamConfig the checkpoint was trained with.
    expected_shapes: optional Flax shape tree (`param_shapes(config)`); when given, every array's
      shape is checked and a mismatch raises CheckpointError naming the key.

  Returns:
    nested dict of float32 numpy arrays, the `params` of `Sam(config)`.
  """
  params = apply_table_from_torch(state_dict, key_table(config))
  if expected_shapes is not None:
    for key, path, _ in key_table(config):
      want, node, got = expected_shapes, params, None
      for p in path:
        want, node = want[p], node[p]
      got = node.shape
      if tuple(got) != tuple(want.shape):
        raise CheckpointError(f"SAM key {key}: shape {tuple(state_dict[key].shape)} gives {got}, "
                              f"config {config.name} expects {tuple(want.shape)}")
  return params


def to_torch(params: dict, config: SamConfig) -> dict:
  """Flax params of `Sam(config)` -> {torch key: float32 numpy array in torch layout}."""
  sd = {}
  for key, path, rule in key_table(config):
    node = params
    try:
      for p in path:
        node = node[p]
    except KeyError as e:
      raise CheckpointError(f"Flax params lack {'/'.join(path)} (torch key {key})") from e
    a = np.asarray(node, np.float32)
    sd[key] = a.transpose(_TO_TORCH[rule]) if rule in _TO_TORCH else a
  return sd


def load_pth(path, config: SamConfig) -> dict:
  """Official SAM `.pth` (torch.load weights_only) or `.npz` state_dict -> Flax params."""
  from icmh_jax.convert import pth  # torch is imported lazily there
  from icmh_jax.sam.model import param_shapes
  return from_torch(pth.load_state_dict(path), config, param_shapes(config))


def save_converted(out_dir, params, config: SamConfig, source: str | None = None) -> dict:
  """Writes a params directory whose meta records the SAM config (name and every size).

  Returns:
    the meta written: {"system": "sam", "sam_config": name, "model": sizes, "source": ...}.
  """
  from icmh_jax.params_io import save_params
  meta = {"system": "sam", "sam_config": config.name, "model": dataclasses.asdict(config)}
  if source is not None:
    meta["source"] = str(source)
  save_params(out_dir, params, meta)
  return meta


def load_converted(path) -> tuple[dict, SamConfig]:
  """(params, config) from a params directory written by `save_converted` / `icmh convert sam`."""
  from icmh_jax.sam.model import param_shapes
  from icmh_jax.params_io import load_params, read_meta
  meta = read_meta(path)
  if meta.get("system") != "sam":
    raise CheckpointError(f"checkpoint {path} holds system {meta.get('system')!r}, not 'sam'")
  model = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["model"].items()}
  config = SamConfig(**model)
  params, _ = load_params(path, {"system": "sam"}, like=param_shapes(config))
  return params, config


def convert_checkpoint(ckpt_path, out_dir, config_name: str) -> dict:
  """`icmh convert sam`: official `.pth` (or `.npz`) of `config_name` (vit_b/l/h) -> params dir.

  Returns:
    the meta written (see `save_converted`).
  """
  from icmh_jax.sam.model import get_config
  config = get_config(config_name)
  return save_converted(out_dir, load_pth(ckpt_path, config), config, source=ckpt_path)
