"""Convolutions with PyTorch padding, sub-pixel convolution and pixel shuffle (NHWC).

XLA's "SAME" padding on a stride-2 convolution pads (0, 1) on even sizes, PyTorch pads k // 2 on
every side; the reference's numbers need the latter, so every conv here pads explicitly.

Speed (profile of the train step on CPU, see BENCHMARKS.md): with convolutions in YNNPACK (XLA's
CPU default), a 3x3 conv's filter gradient ran 5-9x slower than the forward conv, and the whole
backward of a 1x1 conv 2-3x slower than the same matmul written as a dot. So a 1x1 conv is a dot
over channels, and a k x k conv keeps XLA's forward and input gradient; beside YNNPACK's
convolutions it takes its filter gradient from k row-patch matmuls (`_filter_grad`). Training
processes take convolutions out of YNNPACK (`xla_options.for_training`), where XLA's own filter
gradient is 2.4x faster than the row patches; GPU and TPU use XLA's own too. The numbers are
the same convolution up to float32 summation order.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from icmh_jax import xla_options
from icmh_jax.layers.init import fan_in_uniform, host_zeros

_DN = ("NHWC", "HWIO", "NHWC")


def _xla_conv(x, kernel, stride: int):
  p = kernel.shape[0] // 2
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((p, p), (p, p)),
                                      dimension_numbers=_DN)


def _filter_grad(x, dy, kernel_shape, stride: int):
  """d(conv)/d(kernel) as k matmuls of row patches: sum over b, h, w of patch^T dy.

  x: [B, H, W, C_in], dy: [B, H_out, W_out, C_out] -> [k, k, C_in, C_out].
  """
  k, _, c_in, c_out = kernel_shape
  p = k // 2
  b, ho, wo, _ = dy.shape
  xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  rows = []
  dy2 = dy.reshape(-1, c_out)
  for i in range(k):
    patch = jnp.concatenate(
        [xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
         for j in range(k)], axis=-1)
    rows.append(jax.lax.dot_general(patch.reshape(-1, k * c_in), dy2, (((0,), (0,)), ((), ())),
                                    preferred_element_type=jnp.float32))  # long sums
  return jnp.stack(rows).reshape(k, k, c_in, c_out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d(x, kernel, stride: int = 1):
  """PyTorch-padded k x k convolution (k odd): x [B, H, W, C_in], kernel [k, k, C_in, C_out] ->
  [B, ceil(H / stride), ceil(W / stride), C_out]."""
  return _xla_conv(x, kernel, stride)


def _conv2d_fwd(x, kernel, stride):
  return _xla_conv(x, kernel, stride), (x, kernel)


def _conv2d_bwd(stride, res, dy):
  x, kernel = res
  x = wait_for(x, dy)  # else XLA builds every conv's row patches (3x its input) in the forward
  if not row_patch_filter_grad():
    _, vjp = jax.vjp(lambda x_, k_: _xla_conv(x_, k_, stride), x, kernel)
    return vjp(dy)
  _, input_vjp = jax.vjp(lambda x_: _xla_conv(x_, kernel, stride), x)
  return input_vjp(dy)[0], _filter_grad(x, dy, kernel.shape, stride).astype(kernel.dtype)


def row_patch_filter_grad() -> bool:
  """Whether `conv2d`'s filter gradient is `_filter_grad` (CPU with YNNPACK's convolutions) rather
  than XLA's own; read when the backward is traced."""
  return jax.default_backend() == "cpu" and xla_options.ynn_convolutions()


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def wait_for(tree, token):
  """`tree` unchanged, but computed from `token` too, so XLA cannot schedule what is built from it
  before `token` exists. The backward uses it to keep recomputation (row patches, a checkpointed
  block) out of the forward, where every layer's copy would stay alive until its gradient runs:
  XLA CPU drops `optimization_barrier` before scheduling, a data dependency it keeps. Adds 0 (from
  token's first element) to each floating leaf; only a NaN / Inf in that element shows through.
  """
  zero = jnp.ravel(token)[0] * 0
  return jax.tree.map(lambda a: a + zero.astype(a.dtype), tree)


def vary_like(kernel, x):
  """Inside shard_map, marks `kernel` as varying over the mesh axes `x` varies over: a custom
  VJP must return a cotangent of its input's type, and autodiff then sums the filter gradient
  over those axes exactly as it does for a built-in conv."""
  extra = jax.typeof(x).manual_axis_type.varying - jax.typeof(kernel).manual_axis_type.varying
  return jax.lax.pcast(kernel, tuple(sorted(extra)), to="varying") if extra else kernel


class Conv(nn.Module):
  """k x k convolution with PyTorch's symmetric padding k // 2 (params `kernel` [k, k, in, out],
  `bias` [out], as flax `nn.Conv`, so checkpoints and converters see the same tree).

  Attributes:
    features: output channels.
    kernel_size: k (odd).
    stride: 1 or 2.
  """
  features: int
  kernel_size: int = 3
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    """x: [B, H, W, C_in] -> [B, ceil(H / stride), ceil(W / stride), features]."""
    k, s = self.kernel_size, self.stride
    # PyTorch-like on the host; System.init then draws both as PyTorch does (torch_default_init).
    kernel = self.param("kernel", fan_in_uniform, (k, k, x.shape[-1], self.features))
    bias = self.param("bias", host_zeros, (self.features,))
    dtype = jnp.promote_types(x.dtype, kernel.dtype)  # as flax nn.Conv with dtype=None
    x, kernel, bias = x.astype(dtype), kernel.astype(dtype), bias.astype(dtype)
    if k == 1:  # a 1x1 conv takes the even pixels at stride 2, then is a matmul over channels
      x = x[:, ::s, ::s] if s > 1 else x
      y = jax.lax.dot_general(x, kernel[0, 0], (((x.ndim - 1,), (0,)), ((), ())))
    else:
      y = conv2d(x, vary_like(kernel, x), s)
    return y + bias


def conv(features: int, kernel_size: int = 3, stride: int = 1, name=None) -> Conv:
  """A `Conv` with PyTorch's symmetric padding k // 2 (params `kernel`, `bias`)."""
  return Conv(features, kernel_size, stride, name=name)


def conv3x3(features: int, stride: int = 1, name=None) -> Conv:
  """3x3 conv, padding 1 on every side (compressai `conv3x3`)."""
  return conv(features, 3, stride, name)


def conv1x1(features: int, stride: int = 1, name=None) -> Conv:
  """1x1 conv, no padding; with stride 2 it takes the even pixels (compressai `conv1x1`)."""
  return conv(features, 1, stride, name)


def pixel_shuffle(x, r: int):
  """PyTorch `PixelShuffle(r)` in NHWC: out[h*r+i, w*r+j, c] = in[h, w, c*r*r + i*r + j].

  Args:
    x: [B, H, W, C * r * r].
    r: upscale factor.

  Returns:
    [B, H * r, W * r, C].
  """
  b, h, w, crr = x.shape
  c = crr // (r * r)
  x = x.reshape(b, h, w, c, r, r)
  x = jnp.transpose(x, (0, 1, 4, 2, 5, 3))
  return x.reshape(b, h * r, w * r, c)


class SubpelConv(nn.Module):
  """compressai `subpel_conv3x3`: Conv2d(in, out * r², 3, pad 1) then PixelShuffle(r).

  The conv is named `0` like the reference's `nn.Sequential` index, so the weight key is
  `<name>.0.weight`.
  """
  features: int
  r: int = 2

  @nn.compact
  def __call__(self, x):
    """x: [B, H, W, C_in] -> [B, r H, r W, features]."""
    return pixel_shuffle(conv3x3(self.features * self.r ** 2, name="0")(x), self.r)
