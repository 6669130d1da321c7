"""SAM v1 mask decoder: two-way transformer, 4x upscaling, hypernetwork masks, IoU head. NHWC.

`image_embeddings: [1 or B, h, w, C]`, `image_pe: [1, h, w, C]`, `sparse: [B, N, C]`,
`dense: [B, h, w, C]` -> `masks: [B, 1 + num_multimask_outputs, 4h, 4w]` low-res logits and
`iou_pred: [B, 1 + num_multimask_outputs]`. Output 0 is the single-mask answer, 1.. the
multimask answers (`select_masks`).
"""

import flax.linen as nn
import jax.numpy as jnp

from icmh_jax.sam.image_encoder import gelu, layer_norm
from icmh_jax.sam.transformer import TwoWayTransformer


class ConvTranspose2x2(nn.Module):
  """ConvTranspose2d(kernel 2, stride 2): out[2i+a, 2j+b, o] = bias[o] + sum_c x[i,j,c] K[a,b,c,o].

  Kernel layout [2, 2, in, out] = torch's (in, out, kh, kw) transposed (2, 3, 0, 1); with stride =
  kernel the taps never overlap, so one einsum is the whole op and there is no flip to get wrong.
  """
  features: int

  @nn.compact
  def __call__(self, x):
    """x [B, H, W, Cin] -> [B, 2H, 2W, features]."""
    b, h, w, c = x.shape
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (2, 2, c, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    y = jnp.einsum("bhwc,pqco->bhpwqo", x, kernel)
    return y.reshape(b, 2 * h, 2 * w, self.features) + bias


class MLP(nn.Module):
  """Dense stack with ReLU between layers (none after the last)."""
  hidden_dim: int
  output_dim: int
  num_layers: int

  @nn.compact
  def __call__(self, x):
    for i in range(self.num_layers):
      last = i == self.num_layers - 1
      x = nn.Dense(self.output_dim if last else self.hidden_dim, name=f"layers_{i}")(x)
      if not last:
        x = nn.relu(x)
    return x


class OutputUpscaling(nn.Module):
  """ConvT 2x2/2 (C -> C/4) -> LayerNorm2d -> GELU -> ConvT 2x2/2 (C/4 -> C/8) -> GELU."""
  transformer_dim: int = 256

  @nn.compact
  def __call__(self, x):
    """x [B, h, w, C] -> [B, 4h, 4w, C/8]."""
    x = ConvTranspose2x2(self.transformer_dim // 4, name="output_upscaling_0")(x)
    x = gelu(layer_norm("output_upscaling_1")(x))
    return gelu(ConvTranspose2x2(self.transformer_dim // 8, name="output_upscaling_3")(x))


class MaskDecoder(nn.Module):
  """Predicts masks and their IoU from image and prompt embeddings.

  Attributes:
    transformer_dim: channel width C (256).
    transformer_depth, transformer_num_heads, transformer_mlp_dim: the TwoWayTransformer's sizes.
    num_multimask_outputs: masks predicted for ambiguous prompts (3); one more token is the
      single-mask output.
    iou_head_depth, iou_head_hidden_dim: the IoU MLP's sizes.
  """
  transformer_dim: int = 256
  transformer_depth: int = 2
  transformer_num_heads: int = 8
  transformer_mlp_dim: int = 2048
  num_multimask_outputs: int = 3
  iou_head_depth: int = 3
  iou_head_hidden_dim: int = 256

  @nn.compact
  def __call__(self, image_embeddings, image_pe, sparse, dense):
    """All 1 + num_multimask_outputs masks; see the module docstring for shapes."""
    d = self.transformer_dim
    num_mask_tokens = self.num_multimask_outputs + 1
    emb = nn.initializers.normal(1.0)
    iou_token = self.param("iou_token", emb, (1, d))
    mask_tokens = self.param("mask_tokens", emb, (num_mask_tokens, d))
    b = sparse.shape[0]
    output_tokens = jnp.broadcast_to(jnp.concatenate([iou_token, mask_tokens])[None],
                                     (b, 1 + num_mask_tokens, d))
    tokens = jnp.concatenate([output_tokens, sparse], axis=1)

    # One image embedding serves every prompt of the batch (the reference repeats it).
    _, h, w, _ = dense.shape
    src = jnp.broadcast_to(image_embeddings, (b, h, w, d)) + dense
    hs, src = TwoWayTransformer(self.transformer_depth, d, self.transformer_num_heads,
                                self.transformer_mlp_dim, name="transformer")(src, image_pe, tokens)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1:1 + num_mask_tokens, :]

    upscaled = OutputUpscaling(d, name="upscaling")(src.reshape(b, h, w, d))
    hyper_in = jnp.stack(
        [MLP(d, d // 8, 3, name=f"output_hypernetworks_mlps_{i}")(mask_tokens_out[:, i])
         for i in range(num_mask_tokens)], axis=1)
    masks = jnp.einsum("bnc,bhwc->bnhw", hyper_in, upscaled)
    iou_pred = MLP(self.iou_head_hidden_dim, num_mask_tokens, self.iou_head_depth,
                   name="iou_prediction_head")(iou_token_out)
    return masks, iou_pred


def select_masks(masks, iou_pred, multimask_output: bool):
  """The reference's output slice: masks 1.. when multimask_output, else mask 0 only."""
  if multimask_output:
    return masks[:, 1:], iou_pred[:, 1:]
  return masks[:, :1], iou_pred[:, :1]
