"""Segment Anything v1 (Kirillov et al., ICCV 2023) as one Flax module, and its configs.

`Sam(config)` holds `image_encoder`, `prompt_encoder` and `mask_decoder`; call one part with
`Sam(config).apply(params, ..., method=...)`: `encode_image` ([B, 1024, 1024, 3] normalised ->
[B, 64, 64, 256]), `encode_prompts`, `dense_pe` ([1, 64, 64, 256]) and `decode_masks` (all
1 + num_multimask_outputs low-res masks [B, 4, 256, 256] and IoUs [B, 4]). Configs: `vit_b`,
`vit_l`, `vit_h` (the official sizes) and `config_from_golden(meta)` for the golden's tiny model.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from icmh_jax.errors import ConfigError
from icmh_jax.sam.image_encoder import ImageEncoderViT
from icmh_jax.sam.mask_decoder import MaskDecoder
from icmh_jax.sam.prompt_encoder import PromptEncoder


@dataclasses.dataclass(frozen=True)
class SamConfig:
  """Everything that sizes a SAM v1 model; hashable so it can be a static jit argument."""
  name: str = "vit_b"
  encoder_embed_dim: int = 768
  encoder_depth: int = 12
  encoder_num_heads: int = 12
  encoder_global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
  img_size: int = 1024
  patch_size: int = 16
  mlp_ratio: float = 4.0
  window_size: int = 14
  prompt_embed_dim: int = 256
  mask_in_chans: int = 16
  decoder_depth: int = 2
  decoder_num_heads: int = 8
  decoder_mlp_dim: int = 2048
  num_multimask_outputs: int = 3
  iou_head_depth: int = 3
  iou_head_hidden_dim: int = 256
  pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
  pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
  mask_threshold: float = 0.0

  @property
  def embedding_size(self) -> int:
    """Side of the image embedding grid (64)."""
    return self.img_size // self.patch_size


CONFIGS = {
    "vit_b": SamConfig("vit_b", 768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamConfig("vit_l", 1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamConfig("vit_h", 1280, 32, 16, (7, 15, 23, 31)),
}


def get_config(name: str) -> SamConfig:
  """The official SAM v1 sizes by name: vit_b, vit_l, vit_h."""
  if name not in CONFIGS:
    raise ConfigError(f"unknown SAM config {name!r}; known: {', '.join(sorted(CONFIGS))}")
  return CONFIGS[name]


def config_from_golden(meta: dict, name: str = "golden") -> SamConfig:
  """The model described by a golden JSON's `model_config` (see reference/sam/README.md)."""
  mc = meta["model_config"]
  enc, pe, dec = mc["image_encoder"], mc["prompt_encoder"], mc["mask_decoder"]
  tr = dec["transformer"]
  if enc["img_size"] // enc["patch_size"] != pe["image_embedding_size"][0]:
    raise ConfigError(f"image_embedding_size {pe['image_embedding_size']} does not match "
                      f"img_size {enc['img_size']} / patch_size {enc['patch_size']}")
  if not (enc["qkv_bias"] and enc["use_abs_pos"] and enc["use_rel_pos"]):
    raise ConfigError("only qkv_bias, use_abs_pos and use_rel_pos = True are supported (SAM v1)")
  if tr.get("attention_downsample_rate", 2) != 2 or tr.get("activation", "ReLU") != "ReLU":
    raise ConfigError(f"two-way transformer with attention_downsample_rate "
                      f"{tr.get('attention_downsample_rate')} / activation {tr.get('activation')}; "
                      "SAM v1 (supported) uses 2 / ReLU")
  if enc["out_chans"] != pe["embed_dim"] or dec["transformer_dim"] != pe["embed_dim"]:
    raise ConfigError(f"out_chans {enc['out_chans']}, transformer_dim {dec['transformer_dim']} "
                      f"and prompt embed_dim {pe['embed_dim']} must agree")
  return SamConfig(
      name=name, encoder_embed_dim=enc["embed_dim"], encoder_depth=enc["depth"],
      encoder_num_heads=enc["num_heads"],
      encoder_global_attn_indexes=tuple(enc["global_attn_indexes"]), img_size=enc["img_size"],
      patch_size=enc["patch_size"], mlp_ratio=float(enc["mlp_ratio"]),
      window_size=enc["window_size"], prompt_embed_dim=pe["embed_dim"],
      mask_in_chans=pe["mask_in_chans"], decoder_depth=tr["depth"],
      decoder_num_heads=tr["num_heads"], decoder_mlp_dim=tr["mlp_dim"],
      num_multimask_outputs=dec["num_multimask_outputs"], iou_head_depth=dec["iou_head_depth"],
      iou_head_hidden_dim=dec["iou_head_hidden_dim"], pixel_mean=tuple(mc["pixel_mean"]),
      pixel_std=tuple(mc["pixel_std"]), mask_threshold=float(mc.get("mask_threshold", 0.0)))


class Sam(nn.Module):
  """SAM v1; see the module docstring for the methods and shapes."""
  config: SamConfig

  def setup(self):
    c = self.config
    g = c.embedding_size
    self.image_encoder = ImageEncoderViT(
        img_size=c.img_size, patch_size=c.patch_size, embed_dim=c.encoder_embed_dim,
        depth=c.encoder_depth, num_heads=c.encoder_num_heads, mlp_ratio=c.mlp_ratio,
        out_chans=c.prompt_embed_dim, window_size=c.window_size,
        global_attn_indexes=c.encoder_global_attn_indexes)
    self.prompt_encoder = PromptEncoder(c.prompt_embed_dim, (g, g), (c.img_size, c.img_size),
                                        c.mask_in_chans)
    self.mask_decoder = MaskDecoder(
        c.prompt_embed_dim, c.decoder_depth, c.decoder_num_heads, c.decoder_mlp_dim,
        c.num_multimask_outputs, c.iou_head_depth, c.iou_head_hidden_dim)

  def encode_image(self, x):
    """x [B, img, img, 3] normalised, zero-padded -> [B, img/16, img/16, prompt_embed_dim]."""
    return self.image_encoder(x)

  def encode_prompts(self, points=None, labels=None, boxes=None, masks=None, normalized=False):
    """Sparse [B, N, C] and dense [B, h, w, C] prompt embeddings (see PromptEncoder)."""
    return self.prompt_encoder(points, labels, boxes, masks, normalized)

  def dense_pe(self):
    """[1, h, w, C] position encoding of the image embedding grid."""
    return self.prompt_encoder.dense_pe()

  def decode_masks(self, image_embeddings, sparse, dense):
    """All low-res mask logits [B, 1 + K, 4h, 4w] and IoU predictions [B, 1 + K]."""
    return self.mask_decoder(image_embeddings, self.prompt_encoder.dense_pe(), sparse, dense)

  def __call__(self, x, points, labels):
    """Full forward for initialisation: x [B, img, img, 3], points [B, N, 2], labels [B, N]."""
    sparse, dense = self.encode_prompts(points, labels)
    g = self.config.embedding_size
    masks = jnp.zeros((x.shape[0], 4 * g, 4 * g, 1), jnp.float32)
    _, dense_m = self.encode_prompts(masks=masks)
    return self.decode_masks(self.encode_image(x), sparse, dense + dense_m)


def init_params(config: SamConfig, rng=None):
  """Random parameters of the right shapes (use the converter for real weights)."""
  rng = jax.random.PRNGKey(0) if rng is None else rng
  s = config.img_size
  args = (jnp.zeros((1, s, s, 3)), jnp.zeros((1, 1, 2)), jnp.ones((1, 1), jnp.int32))
  return jax.jit(Sam(config).init)(rng, *args)["params"]


def param_shapes(config: SamConfig):
  """Parameter shapes without computing anything (jax.eval_shape)."""
  s = config.img_size
  args = (jnp.zeros((1, s, s, 3)), jnp.zeros((1, 1, 2)), jnp.ones((1, 1), jnp.int32))
  return jax.eval_shape(Sam(config).init, jax.random.PRNGKey(0), *args)["params"]
