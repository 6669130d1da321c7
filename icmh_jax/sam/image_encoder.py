"""SAM v1 ViT image encoder (Kirillov et al., Segment Anything, ICCV 2023), NHWC.

`x: [B, 1024, 1024, 3]` normalised and zero-padded -> `image_embeddings: [B, 64, 64, out_chans]`.
Patch embedding (16x16 conv) + absolute position embedding, pre-norm ViT blocks that attend inside
14x14 windows (zero-padded, padded tokens not masked) or globally, with decomposed relative
positions, then a conv neck with channel LayerNorms. LayerNorm eps is 1e-6 and GELU is the exact
erf form, as in the reference builder.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.layers.activations import gelu

LN_EPS = 1e-6


def layer_norm(name: str, epsilon: float = LN_EPS) -> nn.LayerNorm:
  """LayerNorm over the last axis with the two-pass (biased) variance torch uses."""
  return nn.LayerNorm(epsilon=epsilon, use_fast_variance=False, name=name)


def window_partition(x, window_size: int):
  """Zero-pads bottom/right to a multiple of the window and splits into windows.

  Args:
    x: [B, H, W, C].
    window_size: side of the square window.

  Returns:
    windows [B * nH * nW, ws, ws, C] (row-major over windows) and the padded size (Hp, Wp).
  """
  b, h, w, c = x.shape
  pad_h, pad_w = (-h) % window_size, (-w) % window_size
  x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
  hp, wp = h + pad_h, w + pad_w
  x = x.reshape(b, hp // window_size, window_size, wp // window_size, window_size, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c), (hp, wp)


def window_unpartition(windows, window_size: int, pad_hw, hw):
  """Inverse of `window_partition`: stitches windows [B*nW, ws, ws, C] and crops to hw."""
  hp, wp = pad_hw
  h, w = hw
  c = windows.shape[-1]
  b = windows.shape[0] // (hp * wp // window_size // window_size)
  x = windows.reshape(b, hp // window_size, wp // window_size, window_size, window_size, c)
  x = x.transpose(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
  return x[:, :h, :w, :]


def rel_pos_index(q_size: int, k_size: int) -> np.ndarray:
  """Index [q, k] into a (2*max(q, k) - 1)-row table; float32 then truncated, as the reference."""
  q_coords = np.arange(q_size, dtype=np.float32)[:, None] * np.float32(max(k_size / q_size, 1.0))
  k_coords = np.arange(k_size, dtype=np.float32)[None, :] * np.float32(max(q_size / k_size, 1.0))
  rel = (q_coords - k_coords) + np.float32((k_size - 1) * max(q_size / k_size, 1.0))
  return rel.astype(np.int64)


def get_rel_pos(q_size: int, k_size: int, rel_pos):
  """Relative position embeddings for every (query, key) pair along one axis.

  Args:
    q_size: query length; k_size: key length.
    rel_pos: [L, C] table; resized linearly (half-pixel centres, no antialias) to
      2*max(q, k) - 1 rows when L differs.

  Returns:
    [q_size, k_size, C].
  """
  max_dist = 2 * max(q_size, k_size) - 1
  if rel_pos.shape[0] != max_dist:
    rel_pos = jax.image.resize(rel_pos, (max_dist, rel_pos.shape[1]), "linear", antialias=False)
  return rel_pos[rel_pos_index(q_size, k_size)]


def add_decomposed_rel_pos(attn, q, rel_pos_h, rel_pos_w, q_size, k_size):
  """Adds q(y,x).Rh[y,ky] + q(y,x).Rw[x,kx] to the attention logits (MViTv2).

  Args:
    attn: [B, qh*qw, kh*kw] logits.
    q: [B, qh*qw, C] unscaled queries.
    rel_pos_h, rel_pos_w: [Lh, C], [Lw, C] tables.
    q_size, k_size: (qh, qw), (kh, kw).

  Returns:
    [B, qh*qw, kh*kw].
  """
  (qh, qw), (kh, kw) = q_size, k_size
  r_h = get_rel_pos(qh, kh, rel_pos_h)
  r_w = get_rel_pos(qw, kw, rel_pos_w)
  b, _, c = q.shape
  r_q = q.reshape(b, qh, qw, c)
  rel_h = jnp.einsum("bhwc,hkc->bhwk", r_q, r_h)
  rel_w = jnp.einsum("bhwc,wkc->bhwk", r_q, r_w)
  attn = attn.reshape(b, qh, qw, kh, kw) + rel_h[..., :, None] + rel_w[..., None, :]
  return attn.reshape(b, qh * qw, kh * kw)


class Attention(nn.Module):
  """Multi-head self-attention with a single qkv projection and decomposed rel-pos.

  `input_size` is the token grid the rel-pos tables are built for: (ws, ws) in windowed blocks,
  (img/patch, img/patch) in global ones.
  """
  dim: int
  num_heads: int
  input_size: tuple[int, int]
  qkv_bias: bool = True
  use_rel_pos: bool = True

  @nn.compact
  def __call__(self, x):
    """x: [B, H, W, dim] -> [B, H, W, dim]."""
    b, h, w, _ = x.shape
    head_dim = self.dim // self.num_heads
    qkv = nn.Dense(3 * self.dim, use_bias=self.qkv_bias, name="qkv")(x)
    qkv = qkv.reshape(b, h * w, 3, self.num_heads, head_dim).transpose(2, 0, 3, 1, 4)
    q, k, v = (t.reshape(b * self.num_heads, h * w, head_dim) for t in qkv)
    attn = jnp.einsum("bqc,bkc->bqk", q * head_dim ** -0.5, k)
    if self.use_rel_pos:
      init = nn.initializers.zeros
      rel_pos_h = self.param("rel_pos_h", init, (2 * self.input_size[0] - 1, head_dim))
      rel_pos_w = self.param("rel_pos_w", init, (2 * self.input_size[1] - 1, head_dim))
      # The reference adds the rel-pos terms computed from the unscaled q.
      attn = add_decomposed_rel_pos(attn, q, rel_pos_h, rel_pos_w, (h, w), (h, w))
    attn = jax.nn.softmax(attn, axis=-1)
    out = jnp.einsum("bqk,bkc->bqc", attn, v)
    out = out.reshape(b, self.num_heads, h, w, head_dim).transpose(0, 2, 3, 1, 4)
    return nn.Dense(self.dim, name="proj")(out.reshape(b, h, w, self.dim))


class Block(nn.Module):
  """Pre-norm ViT block; window_size 0 means global attention."""
  dim: int
  num_heads: int
  mlp_ratio: float = 4.0
  qkv_bias: bool = True
  use_rel_pos: bool = True
  window_size: int = 0
  input_size: tuple[int, int] = (64, 64)

  @nn.compact
  def __call__(self, x):
    """x: [B, H, W, dim] -> [B, H, W, dim]."""
    _, h, w, _ = x.shape
    shortcut = x
    x = layer_norm("norm1")(x)
    if self.window_size > 0:
      x, pad_hw = window_partition(x, self.window_size)
    attn_size = (self.window_size,) * 2 if self.window_size > 0 else tuple(self.input_size)
    x = Attention(self.dim, self.num_heads, attn_size, self.qkv_bias, self.use_rel_pos,
                  name="attn")(x)
    if self.window_size > 0:
      x = window_unpartition(x, self.window_size, pad_hw, (h, w))
    x = shortcut + x
    y = layer_norm("norm2")(x)
    y = nn.Dense(int(self.dim * self.mlp_ratio), name="lin1")(y)
    y = nn.Dense(self.dim, name="lin2")(gelu(y))
    return x + y


class ImageEncoderViT(nn.Module):
  """The SAM ViT encoder; intermediates are sown into the `intermediates` collection.

  Sown: `patch_tokens` (patch embedding before pos_embed) and `block_<i>` outputs, each
  [B, H/16, W/16, embed_dim].
  """
  img_size: int = 1024
  patch_size: int = 16
  embed_dim: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_ratio: float = 4.0
  out_chans: int = 256
  qkv_bias: bool = True
  use_abs_pos: bool = True
  use_rel_pos: bool = True
  window_size: int = 14
  global_attn_indexes: tuple[int, ...] = ()

  @nn.compact
  def __call__(self, x):
    """x: [B, img, img, 3] -> [B, img/patch, img/patch, out_chans]."""
    p = self.patch_size
    x = nn.Conv(self.embed_dim, (p, p), strides=(p, p), padding="VALID", name="patch_embed")(x)
    self.sow("intermediates", "patch_tokens", x)
    grid = self.img_size // p
    if self.use_abs_pos:
      pos_embed = self.param("pos_embed", nn.initializers.zeros, (1, grid, grid, self.embed_dim))
      x = x + pos_embed
    for i in range(self.depth):
      window = 0 if i in self.global_attn_indexes else self.window_size
      x = Block(self.embed_dim, self.num_heads, self.mlp_ratio, self.qkv_bias, self.use_rel_pos,
                window, (grid, grid), name=f"blocks_{i}")(x)
      self.sow("intermediates", f"block_{i}", x)
    x = nn.Conv(self.out_chans, (1, 1), use_bias=False, name="neck_0")(x)
    x = layer_norm("neck_1")(x)
    x = nn.Conv(self.out_chans, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, name="neck_2")(x)
    return layer_norm("neck_3")(x)

