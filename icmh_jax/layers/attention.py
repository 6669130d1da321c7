"""Window multi-head self-attention (W-MSA / SW-MSA) and the Swin block of LIC-TCM, NHWC.

Follows LIC_TCM `WMSA` / `Block` (Liu et al., CVPR 2023, after Swin and SCUNet): windows are
taken row-major over the map, tokens row-major inside a window; qkv output channels are ordered
(q|k|v) × heads × head_dim; logits = q·k / sqrt(head_dim) + relative position bias
P[h, ri - rj + ws - 1, ci - cj + ws - 1]; SW rolls the map by -ws//2 first and masks token pairs
that the roll brought together (the standard Swin mask, last window row / column only).

Difference from the reference: a map whose sides are not multiples of the window is zero-padded
at the bottom/right to the next multiple and cropped back (the reference's "pad small inputs"
branch pads to ws + 1 and never crops, so it crashes on 128x128 images); maps that are multiples
of the window, the only ones the reference can run, are computed exactly as there.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.layers.activations import gelu
from icmh_jax.layers.conv import vary_like
from icmh_jax.layers.init import fan_in_uniform, host_zeros
from icmh_jax.layers.norm import LayerNorm
from icmh_jax.layers.remat import checkpointed


def dense(features: int, name: str) -> nn.Dense:
  """A Linear layer initialised on the host (PyTorch-like kernel; `torch_default_init` then draws
  kernel and bias as PyTorch does)."""
  return nn.Dense(features, kernel_init=fan_in_uniform, bias_init=host_zeros, name=name)


def relative_index(ws: int) -> tuple[np.ndarray, np.ndarray]:
  """Row / column indexes into the (2ws-1, 2ws-1) bias table for every (query, key) pair.

  Returns:
    two int arrays [ws², ws²]: ri - rj + ws - 1 and ci - cj + ws - 1.
  """
  r, c = np.divmod(np.arange(ws * ws), ws)
  return r[:, None] - r[None, :] + ws - 1, c[:, None] - c[None, :] + ws - 1


def shifted_window_mask(h_windows: int, w_windows: int, ws: int) -> np.ndarray:
  """Swin SW-MSA mask: True where a query may NOT attend a key.

  Returns:
    bool [h_windows * w_windows, ws², ws²]; only the last window row / column mask anything.
  """
  s = ws - ws // 2
  m = np.zeros((h_windows, w_windows, ws, ws, ws, ws), bool)
  m[-1, :, :s, :, s:, :] = True
  m[-1, :, s:, :, :s, :] = True
  m[:, -1, :, :s, :, s:] = True
  m[:, -1, :, s:, :, :s] = True
  return m.reshape(h_windows * w_windows, ws * ws, ws * ws)


def _bias_grad(g):
  """Sum of g [..., heads, T, T] over its leading axes, as a matmul with ones: XLA CPU's
  reduction over those axes ran 10x slower than the memory it reads."""
  rows = g.reshape(-1, g.shape[-3] * g.shape[-2] * g.shape[-1])
  total = jnp.dot(jnp.ones((1, rows.shape[0]), g.dtype), rows,
                  preferred_element_type=jnp.float32)  # a long sum: float32 also under bf16
  return total.reshape(g.shape[-3:]).astype(g.dtype)


def _probs(q, k, bias, scale, mask):
  """softmax(q k^T * scale + bias, masked): [..., heads, T, T]."""
  logits = jnp.einsum("...hpc,...hqc->...hpq", q, k) * scale + bias
  if mask is not None:
    logits = jnp.where(mask, -jnp.inf, logits)
  return jax.nn.softmax(logits, axis=-1)


def _attend(q, k, v, bias, scale, mask):
  """softmax(q k^T * scale + bias, masked) v per window and head.

  q, k, v: [..., heads, T, head_dim] (heads before tokens: the batched matmuls then run 2x
  faster on CPU than with tokens first); bias: [heads, T, T]; mask: None or bool broadcastable
  to [..., heads, T, T] (True: may not attend) -> [..., heads, T, head_dim].
  """
  return jnp.einsum("...hpq,...hqc->...hpc", _probs(q, k, bias, scale, mask), v)


def _attend_backward(q, k, v, bias, scale, mask, out, g):
  """The gradients (dq, dk, dv, dbias) of `_attend` for the output gradient g, from q, k, v and
  its output: the probabilities are recomputed, never kept."""
  p = _probs(q, k, bias, scale, mask)
  dv = jnp.einsum("...hpq,...hpc->...hqc", p, g)
  dp = jnp.einsum("...hpc,...hqc->...hpq", g, v)
  # softmax': p * (dp - sum_q dp p), where sum_q dp p = sum_c g out: a reduction over
  # head_dim, not over T (XLA CPU ran the [.., T, T] one at a tenth of memory speed).
  row = jnp.sum(g * out, axis=-1, keepdims=True)
  dlogits = p * (dp - row)  # 0 where masked
  dq = jnp.einsum("...hpq,...hqc->...hpc", dlogits, k) * scale
  dk = jnp.einsum("...hpq,...hpc->...hqc", dlogits, q) * scale
  return dq, dk, dv, _bias_grad(dlogits)


WINDOWS_PER_CHUNK = 16


def _attend_windows(qkv, bias, n_heads: int, *, scale, mask):
  """Multi-head attention inside each window, a chunk of at most WINDOWS_PER_CHUNK windows at a
  time (`lax.map`) both ways, so that a chunk's head split, [heads, T, T] maps and head merge
  stay in cache: W-MSA of 256 x 384 x 128 in 16 heads of 8 ran 797 ms at once, 353 ms in chunks.

  The backward (a custom VJP) keeps only qkv, the bias and the output, and recomputes each
  chunk's maps from them: the maps ([windows, heads, T, T], 8x the activations they come from at
  8x8 windows) were the largest part of the train step's memory. Differentiating the chunked
  forward instead (autodiff through `lax.map`) raised the N=128 step's peak RSS by 4.6 GB; this
  VJP against all windows at once in the backward: N=128 step 54.7 vs 58.6 s, peak RSS 15.4 vs
  14.9 GB; N=64 no faster (BENCHMARKS.md, session 13).

  Args:
    qkv: [B, windows, T, 3C], channels (q|k|v) x heads x head_dim.
    bias: [heads, T, T].
    n_heads: heads.
    scale: logit scale.
    mask: None or numpy bool [windows, T, T] (True: may not attend).

  Returns:
    [B, windows, T, C], channels heads x head_dim.
  """
  b, n_windows, t, c3 = qkv.shape
  c, hd = c3 // 3, c3 // 3 // n_heads
  n = max(d for d in range(1, min(n_windows, WINDOWS_PER_CHUNK) + 1) if n_windows % d == 0)
  chunks = b * n_windows // n
  masks = ()
  if mask is not None:  # a chunk never straddles two images: n divides the windows per image
    m = np.broadcast_to(mask.reshape(1, n_windows // n, n, 1, t, t),
                        (b, n_windows // n, n, 1, t, t))
    masks = (m.reshape(chunks, n, 1, t, t),)

  def split(a):  # a chunk [n, T, parts·C] -> parts x [n, heads, T, head_dim]
    return a.reshape(n, t, -1, n_heads, hd).transpose(2, 0, 3, 1, 4)

  def merge(*parts):  # parts x [n, heads, T, head_dim] -> [n, T, parts·C]
    return jnp.stack(parts).transpose(1, 3, 0, 2, 4).reshape(n, t, len(parts) * c)

  def in_chunks(fn, *arrays):  # fn over chunks of [B, windows, T, ·] arrays (and the mask)
    return jax.lax.map(fn, tuple(a.reshape(chunks, n, t, a.shape[-1]) for a in arrays) + masks)

  def forward(qkv, bias):
    def one(xs):
      q, k, v = split(xs[0])
      return merge(_attend(q, k, v, bias, scale, xs[1] if masks else None))
    return in_chunks(one, qkv).reshape(b, n_windows, t, c)

  @jax.custom_vjp
  def attend(qkv, bias):
    return forward(qkv, bias)

  def fwd(qkv, bias):
    out = forward(qkv, bias)
    return out, (qkv, bias, out)

  def bwd(res, g):
    qkv, bias, out = res

    def one(xs):
      (q, k, v), (o,), (g_,) = split(xs[0]), split(xs[1]), split(xs[2])
      dq, dk, dv, dbias = _attend_backward(q, k, v, bias, scale, xs[3] if masks else None, o, g_)
      return merge(dq, dk, dv), dbias

    dqkv, dbias = in_chunks(one, qkv, out, g)
    return dqkv.reshape(qkv.shape), _bias_grad(dbias)

  attend.defvjp(fwd, bwd)
  return attend(qkv, bias)


class WindowAttention(nn.Module):
  """W-MSA (`shifted=False`) or SW-MSA (`shifted=True`), LIC_TCM `WMSA`.

  Attributes:
    dim: channels C (input and output).
    head_dim: channels per head; n_heads = dim // head_dim.
    window_size: ws.
    shifted: SW-MSA.
  Params: `embedding_layer` Dense(C, 3C), `linear` Dense(C, C), `relative_position_params`
  [n_heads, 2ws-1, 2ws-1].
  """
  dim: int
  head_dim: int
  window_size: int
  shifted: bool = False

  @nn.compact
  def __call__(self, x):
    """x: [B, H, W, C] -> [B, H, W, C]."""
    b, h, w, c = x.shape
    ws, hd = self.window_size, self.head_dim
    n_heads = self.dim // hd
    table = self.param("relative_position_params", nn.initializers.normal(0.02),
                       (n_heads, 2 * ws - 1, 2 * ws - 1))
    ph, pw = -h % ws, -w % ws
    if ph or pw:  # ours, see module docstring
      x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)))
    hp, wp = h + ph, w + pw
    if self.shifted:
      x = jnp.roll(x, (-(ws // 2), -(ws // 2)), axis=(1, 2))
    nh, nw = hp // ws, wp // ws
    x = x.reshape(b, nh, ws, nw, ws, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, nh * nw, ws * ws, c)
    qkv = dense(3 * c, "embedding_layer")(x)
    ri, ci = relative_index(ws)
    mask = shifted_window_mask(nh, nw, ws) if self.shifted else None
    out = _attend_windows(qkv, vary_like(table[:, ri, ci], qkv), n_heads, scale=hd ** -0.5,
                          mask=mask)
    out = dense(self.dim, "linear")(out)
    out = out.reshape(b, nh, nw, ws, ws, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
    if self.shifted:
      out = jnp.roll(out, (ws // 2, ws // 2), axis=(1, 2))
    return out[:, :h, :w]


class SwinBlock(nn.Module):
  """LIC_TCM `Block`: x + MSA(LN1(x)), then + MLP(LN2(x)), MLP = Dense(4C) → GELU(erf) → Dense(C).

  Attributes:
    dim: channels C.
    head_dim: channels per head.
    window_size: ws.
    shifted: SW-MSA instead of W-MSA.
  Params: `ln1`, `msa`, `ln2`, `mlp/0`, `mlp/2` (reference key names).
  """
  dim: int
  head_dim: int
  window_size: int
  shifted: bool = False

  def __call__(self, x):
    """x: [B, H, W, C] -> [B, H, W, C] (recomputed in the backward under
    `remat.checkpoint_blocks("transformer")`)."""
    return checkpointed(self, type(self).block, x, "transformer")

  @nn.compact
  def block(self, x):
    ln = lambda name: LayerNorm(epsilon=1e-5, name=name)
    x = x + WindowAttention(self.dim, self.head_dim, self.window_size, self.shifted,
                            name="msa")(ln("ln1")(x))
    y = ln("ln2")(x)
    y = _Mlp(self.dim, name="mlp")(y)
    return x + y


class _Mlp(nn.Module):
  dim: int

  @nn.compact
  def __call__(self, x):
    x = dense(4 * self.dim, "0")(x)
    return dense(self.dim, "2")(gelu(x))


class SwinPair(nn.Module):
  """LIC_TCM `SwinBlock` (used by SWAtten): a W block `block_1` then an SW block `block_2`."""
  dim: int
  head_dim: int
  window_size: int

  @nn.compact
  def __call__(self, x):
    """x: [B, H, W, C] -> [B, H, W, C]."""
    x = SwinBlock(self.dim, self.head_dim, self.window_size, False, name="block_1")(x)
    return SwinBlock(self.dim, self.head_dim, self.window_size, True, name="block_2")(x)
