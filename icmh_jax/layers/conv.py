"""Convolutions with PyTorch padding, sub-pixel convolution and pixel shuffle (NHWC).

XLA's "SAME" padding on a stride-2 convolution pads (0, 1) on even sizes, PyTorch pads k // 2 on
every side; the reference's numbers need the latter, so every conv here pads explicitly.
"""

import flax.linen as nn
import jax.numpy as jnp


def conv(features: int, kernel_size: int = 3, stride: int = 1, name=None) -> nn.Conv:
  """A flax `nn.Conv` with PyTorch's symmetric padding k // 2 (params `kernel`, `bias`)."""
  p = kernel_size // 2
  return nn.Conv(features, (kernel_size, kernel_size), strides=(stride, stride),
                 padding=((p, p), (p, p)), name=name)


def conv3x3(features: int, stride: int = 1, name=None) -> nn.Conv:
  """3x3 conv, padding 1 on every side (compressai `conv3x3`)."""
  return conv(features, 3, stride, name)


def conv1x1(features: int, stride: int = 1, name=None) -> nn.Conv:
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
