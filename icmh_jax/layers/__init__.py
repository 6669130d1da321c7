"""Flax building blocks of LIC-TCM (NHWC): convs with PyTorch padding, GDN, window attention,
LayerNorm, residual and conv/transformer blocks, SWAtten."""

from icmh_jax.layers.activations import gelu, leaky_relu
from icmh_jax.layers.attention import SwinBlock, SwinPair, WindowAttention
from icmh_jax.layers.blocks import (ConvTransBlock, ResidualBlock, ResidualBlockUpsample,
                                    ResidualBlockWithStride, ResidualUnit, SWAtten)
from icmh_jax.layers.conv import SubpelConv, conv, conv1x1, conv3x3, pixel_shuffle
from icmh_jax.layers.gdn import GDN
from icmh_jax.layers.norm import LayerNorm, layer_norm
