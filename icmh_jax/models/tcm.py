"""LIC-TCM (Liu, Sun, Katto, "Learned Image Compression with Mixed Transformer-CNN
Architectures", CVPR 2023): g_a, h_a, factorized prior on z, h_mean_s / h_scale_s, the Ch-ARM
over slices of y, g_s. Loss L = R(y) + R(z) + λ·255²·mse (docs/design.md).

  x [B, H, W, 3] in [0, 1], H and W multiples of 64
  -> y [B, H/16, W/16, M], z [B, H/64, W/64, z_channels], x_hat [B, H, W, 3] (not clamped).

One parameterised implementation: SA-ICM and the ICMH additional codecs are configs of it
(`M = 64·N_a`, `g_s_in = 320` for ICMH-FF / FR-ICMH).
"""

from typing import Any, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from icmh_jax.entropy.bounds import ste_round
from icmh_jax.entropy.factorized import FactorizedPrior
from icmh_jax.entropy.gaussian import gaussian_likelihood
from icmh_jax.models.channel_arm import ChannelARM
from icmh_jax.models.tcm_transforms import (AnalysisTransform, HyperAnalysis, HyperSynthesis,
                                            SynthesisTransform)


@flax.struct.dataclass
class TCMOutput:
  """What `TCM.__call__` returns; also indexable like a dict (`out["x_hat"]`).

  Attributes:
    x_hat: [B, H, W, 3], not clamped.
    y, y_hat: [B, h, w, M].
    z, z_hat: [B, h/4, w/4, z_channels].
    likelihoods: {"y": [B, h, w, M], "z": [B, h/4, w/4, z_channels]}.
    means, scales: [B, h, w, M] (scales raw, before the 0.11 floor).
    intermediates: per-slice dicts and hyper outputs when asked for, else None.
  """
  x_hat: Any
  y: Any
  y_hat: Any
  z: Any
  z_hat: Any
  likelihoods: Any
  means: Any
  scales: Any
  intermediates: Any = None

  def __getitem__(self, key):
    return getattr(self, key)


class TCM(nn.Module):
  """The LIC-TCM codec.

  Attributes:
    N: transform width (2N channels inside g_a / g_s / h_*).
    M: channels of y (num_slices · 64).
    num_slices: Ch-ARM slices.
    max_support_slices: previous slices each slice sees.
    depths: ConvTransBlocks per stage (g_a: first 3, g_s: last 3).
    head_dims: head dims per stage (g_a: first 3, g_s: last 3).
    window_size: attention window of g_a / g_s and of SWAtten.
    hyper_window_size: attention window of h_a / h_s.
    z_channels: channels of z.
    g_s_in: channels g_s takes (None: M; 320 for the ICMH-FF additional codec).
    inter_dim: SWAtten inner width.
    cc_hidden: entropy-parameter net widths.
    extra_support_channels: channels of an extra Ch-ARM context (0 for LIC-TCM).
  """
  N: int = 128
  M: int = 320
  num_slices: int = 5
  max_support_slices: int = 5
  depths: Sequence[int] = (2, 2, 2, 2, 2, 2)
  head_dims: Sequence[int] = (8, 16, 32, 32, 16, 8)
  window_size: int = 8
  hyper_window_size: int = 4
  z_channels: int = 192
  g_s_in: int | None = None
  inter_dim: int = 128
  cc_hidden: Sequence[int] = (224, 128)
  extra_support_channels: int = 0

  @property
  def slice_width(self) -> int:
    return self.M // self.num_slices

  def setup(self):
    if self.M % self.num_slices:
      raise ValueError(f"M={self.M} is not a multiple of num_slices={self.num_slices}")
    depths, head_dims = tuple(self.depths), tuple(self.head_dims)
    self.g_a = AnalysisTransform(self.N, self.M, depths[:3], head_dims[:3], self.window_size)
    self.g_s = SynthesisTransform(self.N, self.g_s_in or self.M, depths[3:], head_dims[3:],
                                  self.window_size)
    self.h_a = HyperAnalysis(self.N, self.z_channels, self.hyper_window_size)
    self.h_mean_s = HyperSynthesis(self.N, self.M, self.hyper_window_size)
    self.h_scale_s = HyperSynthesis(self.N, self.M, self.hyper_window_size)
    self.entropy_bottleneck = FactorizedPrior(self.z_channels)
    self.ch_arm = ChannelARM(self.num_slices, self.slice_width, self.max_support_slices,
                             self.extra_support_channels, self.inter_dim,
                             window_size=self.window_size, hidden=tuple(self.cc_hidden))

  # Pieces, callable with `model.apply(..., method=...)` by the coders and the ICMH systems.

  def analysis(self, x):
    """g_a: [B, H, W, 3] -> y [B, H/16, W/16, M]."""
    return self.g_a(x)

  def synthesis(self, y_hat):
    """g_s: [B, h, w, g_s_in] -> x_hat [B, 16h, 16w, 3] (not clamped)."""
    return self.g_s(y_hat)

  def synthesis_padded(self, y_hat):
    """g_s of y_hat zero-padded on channels up to g_s_in (ICMH-FF: the additional codec alone)."""
    extra = (self.g_s_in or self.M) - y_hat.shape[-1]
    if extra > 0:
      y_hat = jnp.pad(y_hat, ((0, 0), (0, 0), (0, 0), (0, extra)))
    return self.g_s(y_hat)

  def hyper_analysis(self, y):
    """h_a: [B, h, w, M] -> z [B, h/4, w/4, z_channels]."""
    return self.h_a(y)

  def hyper_synthesis(self, z_hat):
    """(h_mean_s(z_hat), h_scale_s(z_hat)), each [B, 4h', 4w', M]."""
    return self.h_mean_s(z_hat), self.h_scale_s(z_hat)

  def slice_entropy_params(self, k: int, latent_means, latent_scales, y_hat_prev, context):
    """What the coders need of slice k's Ch-ARM parameters: {mean_support, mu, scale}."""
    p = self.ch_arm.slice_params(k, latent_means, latent_scales, y_hat_prev, context)
    return {n: p[n] for n in ("mean_support", "mu", "scale")}

  def slice_lrp(self, k: int, mean_support, y_hat_pre_lrp):
    """Slice k's latent residual prediction: (y_hat_k, lrp_k) (`ChannelARM.slice_lrp`)."""
    return self.ch_arm.slice_lrp(k, mean_support, y_hat_pre_lrp)

  def medians(self):
    """The factorized prior's medians [z_channels]."""
    return self.entropy_bottleneck.medians()

  def __call__(self, x, train: bool = False, noise=None, context=None,
               return_intermediates: bool = False) -> TCMOutput:
    """Training / estimation forward (the reference's `TCM.forward`).

    Args:
      x: [B, H, W, 3] in [0, 1].
      train: likelihoods of y + U(-½, ½) and z + U(-½, ½) (True) or of the rounded values.
        y_hat and z_hat are ste-rounded in both modes (noise enters only the rates).
      noise: optional {"y": [B,h,w,M], "z": [B,h',w',z_channels]} uniform noise (train); None
        draws it from the "noise" RNG stream.
      context: optional [B, h, w, extra_support_channels] extra Ch-ARM support.
      return_intermediates: also return per-slice supports / mu / scale / lrp and hyper outputs.

    Returns:
      TCMOutput.
    """
    b, h, w, c = x.shape
    y = self.g_a(x)
    return self.code_y(y, train=train, noise=noise, context=context,
                       return_intermediates=return_intermediates)

  def code_y(self, y, train: bool = False, noise=None, context=None,
             return_intermediates: bool = False, hyper_input=None) -> TCMOutput:
    """The forward from y on (h_a, priors, Ch-ARM, g_s); FR-ICMH feeds a residual y here, and
    `hyper_input` (same shape as y) replaces y as h_a's input when given."""
    z = self.h_a(y if hyper_input is None else hyper_input)
    if train and noise is None:
      ky, kz = jax.random.split(self.make_rng("noise"))
      noise = {"y": jax.random.uniform(ky, y.shape, y.dtype, -0.5, 0.5),
               "z": jax.random.uniform(kz, z.shape, z.dtype, -0.5, 0.5)}
    med = self.entropy_bottleneck.medians()
    # z_hat = ste_round(z - med) + med in both modes: the main loss gives the medians exactly
    # zero gradient; only the aux loss moves the quantiles (as in the reference).
    z_hat = ste_round(z - med) + med
    z_tilde = z + noise["z"] if train else jnp.round(z - med) + med
    z_likelihoods = self.entropy_bottleneck(z_tilde)
    latent_means, latent_scales = self.hyper_synthesis(z_hat)
    y_likelihoods = []

    def action(k, y_k, mu, scale):
      y_hat_pre = ste_round(y_k - mu) + mu
      if train:
        sl = slice(k * self.slice_width, (k + 1) * self.slice_width)
        y_likelihoods.append(gaussian_likelihood(y_k + noise["y"][..., sl], scale, mu))
      else:
        y_likelihoods.append(gaussian_likelihood(y_hat_pre, scale, mu))
      return y_hat_pre

    record = []
    y_hat = self.ch_arm(latent_means, latent_scales, action, y=y, context=context, record=record)
    x_hat = self.synthesis_padded(y_hat)
    inter = None
    if return_intermediates:
      inter = {"slices": record, "latent_means": latent_means, "latent_scales": latent_scales}
    return TCMOutput(
        x_hat=x_hat, y=y, y_hat=y_hat, z=z, z_hat=z_hat,
        likelihoods={"y": jnp.concatenate(y_likelihoods, axis=-1), "z": z_likelihoods},
        means=jnp.concatenate([r["mu"] for r in record], axis=-1),
        scales=jnp.concatenate([r["scale"] for r in record], axis=-1), intermediates=inter)
