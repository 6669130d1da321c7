"""Residual and mixed conv/transformer blocks of LIC-TCM (Liu et al., CVPR 2023), NHWC.

Names of parameters follow the reference (`conv1`, `gdn`, `skip`, `subpel_conv/0`, `conv1_1`,
`trans_block`, `conv_a/0/conv/2`, ...), so a checkpoint converts by renaming.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from icmh_jax.layers.activations import leaky_relu
from icmh_jax.layers.attention import SwinBlock, SwinPair
from icmh_jax.layers.conv import SubpelConv, conv1x1, conv3x3
from icmh_jax.layers.gdn import GDN
from icmh_jax.layers.remat import checkpointed


class ResidualBlock(nn.Module):
  """compressai `ResidualBlock(C, C)`: x + lrelu(conv3x3(lrelu(conv3x3(x))))."""
  channels: int

  @nn.compact
  def __call__(self, x):
    """x: [B, H, W, C] -> [B, H, W, C]."""
    out = leaky_relu(conv3x3(self.channels, name="conv1")(x))
    out = leaky_relu(conv3x3(self.channels, name="conv2")(out))
    return out + x


class ResidualBlockWithStride(nn.Module):
  """compressai: GDN(conv3x3(lrelu(conv3x3_s(x)))) + conv1x1_s(x)."""
  features: int
  stride: int = 2

  @nn.compact
  def __call__(self, x):
    """x: [B, H, W, C_in] -> [B, ceil(H/s), ceil(W/s), features]."""
    out = leaky_relu(conv3x3(self.features, self.stride, name="conv1")(x))
    out = GDN(self.features, name="gdn")(conv3x3(self.features, name="conv2")(out))
    return out + conv1x1(self.features, self.stride, name="skip")(x)


class ResidualBlockUpsample(nn.Module):
  """compressai: IGDN(conv3x3(lrelu(subpel(x)))) + subpel_up(x), two different sub-pixel convs."""
  features: int
  r: int = 2

  @nn.compact
  def __call__(self, x):
    """x: [B, H, W, C_in] -> [B, r H, r W, features]."""
    out = leaky_relu(SubpelConv(self.features, self.r, name="subpel_conv")(x))
    out = GDN(self.features, inverse=True, name="igdn")(conv3x3(self.features, name="conv")(out))
    return out + SubpelConv(self.features, self.r, name="upsample")(x)


class ConvTransBlock(nn.Module):
  """LIC_TCM `ConvTransBlock` on conv_dim + trans_dim channels.

  t = conv1x1_1(x); c, s = split(t); c' = ResidualBlock(c) + c (the reference adds the identity
  twice); s' = SwinBlock(s); out = x + conv1x1_2(cat(c', s')).

  Attributes:
    conv_dim: channels of the conv branch.
    trans_dim: channels of the transformer branch.
    head_dim: channels per attention head.
    window_size: ws.
    shifted: SW-MSA in the transformer branch.
  """
  conv_dim: int
  trans_dim: int
  head_dim: int
  window_size: int
  shifted: bool = False

  def __call__(self, x):
    """x: [B, H, W, conv_dim + trans_dim] -> same shape (recomputed in the backward under
    `remat.checkpoint_blocks("block")`)."""
    return checkpointed(self, type(self).block, x, "block")

  @nn.compact
  def block(self, x):
    c_total = self.conv_dim + self.trans_dim
    t = conv1x1(c_total, name="conv1_1")(x)
    c, s = t[..., :self.conv_dim], t[..., self.conv_dim:]
    c = ResidualBlock(self.conv_dim, name="conv_block")(c) + c
    s = SwinBlock(self.trans_dim, self.head_dim, self.window_size, self.shifted,
                  name="trans_block")(s)
    return x + conv1x1(c_total, name="conv1_2")(jnp.concatenate([c, s], axis=-1))


class ResidualUnit(nn.Module):
  """compressai `AttentionBlock` unit: relu(v + conv1x1(relu(conv3x3(relu(conv1x1(v)))))).

  Params `conv/0` (C -> C/2, 1x1), `conv/2` (3x3), `conv/4` (C/2 -> C, 1x1).
  """
  channels: int

  @nn.compact
  def __call__(self, v):
    """v: [B, H, W, C] -> [B, H, W, C]."""
    return _UnitConvs(self.channels, name="conv")(v)


class _UnitConvs(nn.Module):
  channels: int

  @nn.compact
  def __call__(self, v):
    half = self.channels // 2
    out = jax.nn.relu(conv1x1(half, name="0")(v))
    out = jax.nn.relu(conv3x3(half, name="2")(out))
    return jax.nn.relu(v + conv1x1(self.channels, name="4")(out))


class _ConvB(nn.Module):
  channels: int

  @nn.compact
  def __call__(self, v):
    for i in range(3):
      v = ResidualUnit(self.channels, name=str(i))(v)
    return conv1x1(self.channels, name="3")(v)


class _ConvA(nn.Module):
  channels: int

  @nn.compact
  def __call__(self, v):
    for i in range(3):
      v = ResidualUnit(self.channels, name=str(i))(v)
    return v


class SWAtten(nn.Module):
  """LIC_TCM `SWAtten`: Swin-based attention module of the Ch-ARM.

  u = in_conv(x); z = SwinPair(u); out = out_conv(conv_a(u) · sigmoid(conv_b(z)) + u).

  Attributes:
    features: output channels (None: as many as the input has, as in the Ch-ARM).
    head_dim: channels per head in the Swin pair.
    window_size: ws.
    inter_dim: width of the inner branch (128 in LIC-TCM).
  """
  features: int | None = None
  head_dim: int = 16
  window_size: int = 8
  inter_dim: int = 128

  @nn.compact
  def __call__(self, x):
    """x: [B, H, W, C_in] -> [B, H, W, features or C_in]."""
    features = self.features or x.shape[-1]
    u = conv1x1(self.inter_dim, name="in_conv")(x)
    z = SwinPair(self.inter_dim, self.head_dim, self.window_size, name="non_local_block")(u)
    a = _ConvA(self.inter_dim, name="conv_a")(u)
    b = _ConvB(self.inter_dim, name="conv_b")(z)
    return conv1x1(features, name="out_conv")(a * jax.nn.sigmoid(b) + u)
