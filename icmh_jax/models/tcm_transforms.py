"""The four transforms of LIC-TCM (Liu, Sun, Katto, CVPR 2023, Fig. 2), NHWC.

  g_a: x [B, H, W, 3] -> y [B, H/16, W/16, M]      h_a: y [B, h, w, C] -> z [B, h/4, w/4, z_ch]
  g_s: y_hat [B, h, w, M_in] -> x_hat [B, 16h, 16w, 3]
  h_s: z_hat [B, h', w', z_ch] -> [B, 4h', 4w', M]  (h_mean_s and h_scale_s are two of these)

Submodules are numbered like the reference's `nn.Sequential`s (`g_a/0` ... `g_a/9`), so their
parameter paths are the reference keys. ConvTransBlocks alternate W-MSA and SW-MSA, W first.
"""

from typing import Sequence

import flax.linen as nn

from icmh_jax.layers import (ConvTransBlock, ResidualBlockUpsample, ResidualBlockWithStride,
                             SubpelConv, conv3x3)


def _stage_widths(depths: Sequence[int], head_dims: Sequence[int], synthesis: bool):
  """Accepts the 3 values of one transform or the reference's 6 (g_a: first 3, g_s: last 3)."""
  depths, head_dims = tuple(depths), tuple(head_dims)
  if len(depths) == 6:
    depths = depths[3:] if synthesis else depths[:3]
  if len(head_dims) == 6:
    head_dims = head_dims[3:] if synthesis else head_dims[:3]
  if len(depths) != 3 or len(head_dims) != 3:
    raise ValueError(f"depths {depths} / head_dims {head_dims}: need 3 values per transform "
                     "(or the reference's 6)")
  return depths, head_dims


def _ctb_stack(x, n: int, depth: int, head_dim: int, window_size: int, start: int):
  """`depth` ConvTransBlock(N, N) on 2N channels, W then SW, named start, start + 1, ..."""
  for i in range(depth):
    x = ConvTransBlock(n, n, head_dim, window_size, shifted=bool(i % 2), name=str(start + i))(x)
  return x


class AnalysisTransform(nn.Module):
  """g_a: 3 x [RBWS(2N, s2), CTB x depth] then conv3x3(M, s2).

  Attributes:
    N: half the width of the transform (2N channels inside).
    M: channels of y.
    depths: ConvTransBlocks per stage (3, or the reference's 6-tuple config).
    head_dims: head dims per stage (3, or the reference's 6).
    window_size: attention window.
  """
  N: int = 128
  M: int = 320
  depths: Sequence[int] = (2, 2, 2)
  head_dims: Sequence[int] = (8, 16, 32)
  window_size: int = 8

  @nn.compact
  def __call__(self, x):
    """x: [B, H, W, 3] in [0, 1], H and W multiples of 16 -> y: [B, H/16, W/16, M]."""
    b, h, w, c = x.shape
    depths, head_dims = _stage_widths(self.depths, self.head_dims, synthesis=False)
    i = 0
    for depth, hd in zip(depths, head_dims):
      x = ResidualBlockWithStride(2 * self.N, 2, name=str(i))(x)
      x = _ctb_stack(x, self.N, depth, hd, self.window_size, i + 1)
      i += 1 + depth
    return conv3x3(self.M, 2, name=str(i))(x)


class SynthesisTransform(nn.Module):
  """g_s: 3 x [RBU(2N, x2), CTB x depth] then subpel_conv3x3(3, x2).

  Attributes:
    N: half the width of the transform.
    M_in: channels of y_hat (320 also for the ICMH-FF additional codec).
    depths: ConvTransBlocks per stage (3, or the reference's 6 whose last 3 are used).
    head_dims: head dims per stage (3, or the reference's 6).
    window_size: attention window.
  """
  N: int = 128
  M_in: int = 320
  depths: Sequence[int] = (2, 2, 2)
  head_dims: Sequence[int] = (32, 16, 8)
  window_size: int = 8

  @nn.compact
  def __call__(self, y_hat):
    """y_hat: [B, h, w, M_in] -> x_hat: [B, 16h, 16w, 3] (not clamped)."""
    b, h, w, c = y_hat.shape
    depths, head_dims = _stage_widths(self.depths, self.head_dims, synthesis=True)
    x, i = y_hat, 0
    for depth, hd in zip(depths, head_dims):
      x = ResidualBlockUpsample(2 * self.N, 2, name=str(i))(x)
      x = _ctb_stack(x, self.N, depth, hd, self.window_size, i + 1)
      i += 1 + depth
    return SubpelConv(3, 2, name=str(i))(x)


class HyperAnalysis(nn.Module):
  """h_a: RBWS(2N, s2), CTB x depth (window 4), conv3x3(z_channels, s2).

  Attributes:
    N: half the width.
    z_channels: channels of z (192).
    window_size: attention window (4).
    head_dim: channels per head (32).
    depth: ConvTransBlocks (2).
  """
  N: int = 128
  z_channels: int = 192
  window_size: int = 4
  head_dim: int = 32
  depth: int = 2

  @nn.compact
  def __call__(self, y):
    """y: [B, h, w, C] -> z: [B, h/4, w/4, z_channels]."""
    b, h, w, c = y.shape
    x = ResidualBlockWithStride(2 * self.N, 2, name="0")(y)
    x = _ctb_stack(x, self.N, self.depth, self.head_dim, self.window_size, 1)
    return conv3x3(self.z_channels, 2, name=str(1 + self.depth))(x)


class HyperSynthesis(nn.Module):
  """h_s: RBU(2N, x2), CTB x depth (window 4), subpel_conv3x3(M, x2).

  Attributes:
    N: half the width.
    M: output channels (latent means or scales).
    window_size: attention window (4).
    head_dim: channels per head (32).
    depth: ConvTransBlocks (2).
  """
  N: int = 128
  M: int = 320
  window_size: int = 4
  head_dim: int = 32
  depth: int = 2

  @nn.compact
  def __call__(self, z_hat):
    """z_hat: [B, h', w', z_channels] -> [B, 4h', 4w', M]."""
    b, h, w, c = z_hat.shape
    x = ResidualBlockUpsample(2 * self.N, 2, name="0")(z_hat)
    x = _ctb_stack(x, self.N, self.depth, self.head_dim, self.window_size, 1)
    return SubpelConv(self.M, 2, name=str(1 + self.depth))(x)
