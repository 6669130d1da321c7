"""SAM v1 prompt encoder: random Fourier position encoding, point / box / mask prompts, NHWC.

Sparse prompts (points, box corners) become `[B, N, embed_dim]` tokens: the random Fourier PE of
the pixel-centre coordinate (Tancik et al. 2020) plus a learned per-kind embedding. A dense mask
prompt `[B, 4h, 4w, 1]` (low-res logits) becomes `[B, h, w, embed_dim]` through a small strided
conv stack; without one, the learned `no_mask_embed` is broadcast.
"""

import math

import flax.linen as nn
import jax.numpy as jnp

from icmh_jax.sam.image_encoder import gelu, layer_norm


class PositionEmbeddingRandom(nn.Module):
  """PE with a fixed Gaussian G [2, num_pos_feats]: [sin(2 pi p), cos(2 pi p)], p = (2c - 1) G."""
  num_pos_feats: int = 128

  def setup(self):
    self.positional_encoding_gaussian_matrix = self.param(
        "positional_encoding_gaussian_matrix", nn.initializers.normal(1.0), (2, self.num_pos_feats))

  def encode(self, coords):
    """coords: [..., 2] (x, y) normalised to [0, 1] -> [..., 2 * feats] (sin block first)."""
    p = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
    p = 2 * math.pi * p
    return jnp.concatenate([jnp.sin(p), jnp.cos(p)], axis=-1)

  def grid(self, size: tuple[int, int]):
    """PE of an (h, w) grid at cell centres ((j + 0.5) / w, (i + 0.5) / h): [h, w, 2 * feats]."""
    h, w = size
    y = (jnp.arange(h, dtype=jnp.float32) + 0.5) / h
    x = (jnp.arange(w, dtype=jnp.float32) + 0.5) / w
    xy = jnp.stack(jnp.broadcast_arrays(x[None, :], y[:, None]), axis=-1)
    return self.encode(xy)

  def with_coords(self, coords, image_size: tuple[int, int]):
    """coords: [..., 2] pixel (x, y) in an (h, w) image -> [..., 2 * feats] (float32 division)."""
    h, w = image_size
    return self.encode(coords / jnp.array([w, h], jnp.float32))

  def __call__(self, size: tuple[int, int]):
    return self.grid(size)


class PromptEncoder(nn.Module):
  """Encodes point, box and mask prompts for the mask decoder.

  Attributes:
    embed_dim: token width (256).
    image_embedding_size: (h, w) of the image embedding (64, 64).
    input_image_size: (H, W) of the padded model input (1024, 1024); coordinates are divided by it.
    mask_in_chans: hidden channels of the mask downscaling stack (16).
  """
  embed_dim: int = 256
  image_embedding_size: tuple[int, int] = (64, 64)
  input_image_size: tuple[int, int] = (1024, 1024)
  mask_in_chans: int = 16

  def setup(self):
    d = self.embed_dim
    self.pe_layer = PositionEmbeddingRandom(d // 2)
    emb = nn.initializers.normal(1.0)
    self.point_embeddings = [self.param(f"point_embeddings_{i}", emb, (1, d)) for i in range(4)]
    self.not_a_point_embed = self.param("not_a_point_embed", emb, (1, d))
    self.no_mask_embed = self.param("no_mask_embed", emb, (1, d))
    c = self.mask_in_chans
    self.mask_downscaling_0 = nn.Conv(c // 4, (2, 2), strides=(2, 2), padding="VALID")
    self.mask_downscaling_1 = layer_norm(None)
    self.mask_downscaling_3 = nn.Conv(c, (2, 2), strides=(2, 2), padding="VALID")
    self.mask_downscaling_4 = layer_norm(None)
    self.mask_downscaling_6 = nn.Conv(d, (1, 1))

  def dense_pe(self):
    """Dense PE of the image embedding grid: [1, h, w, embed_dim]."""
    return self.pe_layer.grid(self.image_embedding_size)[None]

  def embed_points(self, points, labels, pad: bool, normalized: bool = False):
    """points [B, N, 2] (x, y) in the model frame, labels [B, N] (1 fg, 0 bg, -1 none).

    With `normalized`, points are already (p + 0.5) / input size (the AMG's float64 host path).
    Returns [B, N (+1 if pad), embed_dim].
    """
    if pad:  # a (0, 0) point labelled -1 stands in for the missing box
      points = jnp.concatenate([points, jnp.zeros_like(points[:, :1])], axis=1)
      labels = jnp.concatenate([labels, -jnp.ones_like(labels[:, :1])], axis=1)
    if normalized:
      emb = self.pe_layer.encode(points)
    else:
      emb = self.pe_layer.with_coords(points + 0.5, self.input_image_size)
    labels = labels[..., None]
    emb = jnp.where(labels == -1, self.not_a_point_embed, emb)
    emb = emb + jnp.where(labels == 0, self.point_embeddings[0], 0.0)
    return emb + jnp.where(labels == 1, self.point_embeddings[1], 0.0)

  def embed_boxes(self, boxes, normalized: bool = False):
    """boxes [B, 4] xyxy in the model frame -> [B, 2, embed_dim] corner tokens."""
    corners = boxes.reshape(-1, 2, 2)
    if normalized:
      emb = self.pe_layer.encode(corners)
    else:
      emb = self.pe_layer.with_coords(corners + 0.5, self.input_image_size)
    return emb + jnp.concatenate([self.point_embeddings[2], self.point_embeddings[3]], axis=0)

  def embed_masks(self, masks):
    """masks [B, 4h, 4w, 1] low-res logits -> [B, h, w, embed_dim]."""
    x = gelu(self.mask_downscaling_1(self.mask_downscaling_0(masks)))
    x = gelu(self.mask_downscaling_4(self.mask_downscaling_3(x)))
    return self.mask_downscaling_6(x)

  def __call__(self, points=None, labels=None, boxes=None, masks=None, normalized: bool = False):
    """Embeds the given prompts (any may be None).

    Args:
      points: [B, N, 2] (x, y) model-frame pixels, with labels [B, N] int.
      boxes: [B, 4] xyxy model-frame pixels.
      masks: [B, 4h, 4w, 1] low-res mask logits.
      normalized: coordinates are already (p + 0.5) / input_image_size.

    Returns:
      sparse [B, N', embed_dim] (points (+ pad point), then box corners) and
      dense [B, h, w, embed_dim].
    """
    b = next((a.shape[0] for a in (points, boxes, masks) if a is not None), 1)
    sparse = [jnp.zeros((b, 0, self.embed_dim), jnp.float32)]
    if points is not None:
      sparse.append(self.embed_points(points, labels, pad=boxes is None, normalized=normalized))
    if boxes is not None:
      sparse.append(self.embed_boxes(boxes, normalized=normalized))
    sparse = jnp.concatenate(sparse, axis=1)
    if masks is not None:
      dense = self.embed_masks(masks)
    else:
      h, w = self.image_embedding_size
      dense = jnp.broadcast_to(self.no_mask_embed.reshape(1, 1, 1, -1), (b, h, w, self.embed_dim))
    return sparse, dense
