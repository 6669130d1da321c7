"""Channel-wise autoregressive entropy model (Ch-ARM) of LIC-TCM with SWAtten and LRP.

y is split into `num_slices` slices of `slice_width` channels. Slice k's support is
[latent_means, context, y_hat_0 .. y_hat_{k-1}] (at most `max_support_slices` previous slices;
`context` is an optional extra map, e.g. the machine ŷm for a conditional residual codec, absent
in LIC-TCM). atten_mean_k (SWAtten) turns the support into `mean_support`, cc_mean_transforms_k
into μ_k; the same on the scale side gives σ_k. The coded value is y_hat_pre_k = round(y_k − μ_k)
+ μ_k, and latent residual prediction adds 0.5·tanh(lrp_k([mean_support, y_hat_pre_k])) (Minnen &
Singh 2020). A slice only sees earlier slices because the decoder has nothing else yet.

`run_slices` is the one per-slice loop; the training forward, compress and decompress call it with
their own per-slice action (noise + likelihood, round + record symbols, decode symbols).
"""

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from icmh_jax.layers import SWAtten, conv3x3, gelu


class EntropyParameters(nn.Module):
  """conv3x3 -> GELU -> conv3x3 -> GELU -> conv3x3 (convs named 0, 2, 4 as in the reference)."""
  features: int
  hidden: Sequence[int] = (224, 128)

  @nn.compact
  def __call__(self, x):
    """x: [B, h, w, C] -> [B, h, w, features]."""
    x = gelu(conv3x3(self.hidden[0], name="0")(x))
    x = gelu(conv3x3(self.hidden[1], name="2")(x))
    return conv3x3(self.features, name="4")(x)


def run_slices(num_slices: int, slice_width: int, params_fn: Callable, lrp_fn: Callable,
               action: Callable, y=None, record: list | None = None):
  """The per-slice Ch-ARM loop, shared by the forward, compress and decompress.

  Args:
    num_slices: K.
    slice_width: channels per slice.
    params_fn: (k, y_hat_prev: tuple of [B,h,w,slice_width]) -> dict with `mean_support`,
      `mu`, `scale` (and optionally `scale_support`).
    lrp_fn: (k, mean_support, y_hat_pre_lrp) -> (y_hat_k, lrp_k).
    action: (k, y_k or None, mu_k, scale_k) -> y_hat_pre_lrp_k: adds noise and records
      likelihoods, rounds and records symbols, or decodes symbols, and returns round(...) + mu.
    y: [B, h, w, K * slice_width] or None (decoder).
    record: optional list that receives one dict of intermediates per slice.

  Returns:
    y_hat [B, h, w, K * slice_width] (after LRP).
  """
  y_hat_slices = []
  for k in range(num_slices):
    y_k = None if y is None else y[..., k * slice_width:(k + 1) * slice_width]
    p = params_fn(k, tuple(y_hat_slices))
    y_hat_pre = action(k, y_k, p["mu"], p["scale"])
    y_hat_k, lrp = lrp_fn(k, p["mean_support"], y_hat_pre)
    y_hat_slices.append(y_hat_k)
    if record is not None:
      record.append(dict(p, y_hat_pre_lrp=y_hat_pre, lrp=lrp, y_hat=y_hat_k))
  return jnp.concatenate(y_hat_slices, axis=-1)


class ChannelARM(nn.Module):
  """Ch-ARM with SWAtten and LRP; parameters `atten_mean_{k}`, `atten_scale_{k}`,
  `cc_mean_transforms_{k}`, `cc_scale_transforms_{k}`, `lrp_transforms_{k}`.

  Attributes:
    num_slices: K.
    slice_width: channels per slice (64).
    max_support_slices: previous slices in the support (5).
    extra_support_channels: channels of `context` (0: LIC-TCM exactly).
    inter_dim: SWAtten inner width (128).
    head_dim: SWAtten head dim (16).
    window_size: SWAtten window (8).
    hidden: widths of the entropy-parameter and LRP nets ((224, 128)).
  """
  num_slices: int
  slice_width: int = 64
  max_support_slices: int = 5
  extra_support_channels: int = 0
  inter_dim: int = 128
  head_dim: int = 16
  window_size: int = 8
  hidden: Sequence[int] = (224, 128)

  def setup(self):
    k_range = range(self.num_slices)
    att = lambda: SWAtten(None, self.head_dim, self.window_size, self.inter_dim)
    self.atten_mean = [att() for _ in k_range]
    self.atten_scale = [att() for _ in k_range]
    net = lambda: EntropyParameters(self.slice_width, tuple(self.hidden))
    self.cc_mean_transforms = [net() for _ in k_range]
    self.cc_scale_transforms = [net() for _ in k_range]
    self.lrp_transforms = [net() for _ in k_range]

  def _support(self, latent, y_hat_prev, context):
    if (context is None) != (self.extra_support_channels == 0):
      raise ValueError(f"ChannelARM(extra_support_channels={self.extra_support_channels}) got "
                       f"context={'None' if context is None else context.shape}")
    parts = [latent] + ([context] if context is not None else [])
    if self.max_support_slices >= 0:
      y_hat_prev = y_hat_prev[:self.max_support_slices]
    return jnp.concatenate(parts + list(y_hat_prev), axis=-1)

  def slice_params(self, k: int, latent_means, latent_scales, y_hat_prev=(), context=None):
    """Entropy parameters of slice k.

    Args:
      k: slice index (static).
      latent_means, latent_scales: [B, h, w, M] from h_mean_s / h_scale_s.
      y_hat_prev: the k previous y_hat slices (after LRP), each [B, h, w, slice_width].
      context: [B, h, w, extra_support_channels] or None.

    Returns:
      dict mean_support, scale_support [B, h, w, C_k], mu, scale [B, h, w, slice_width]
      (scale raw: the entropy model floors it at 0.11).
    """
    mean_support = self.atten_mean[k](self._support(latent_means, y_hat_prev, context))
    scale_support = self.atten_scale[k](self._support(latent_scales, y_hat_prev, context))
    return dict(mean_support=mean_support, scale_support=scale_support,
                mu=self.cc_mean_transforms[k](mean_support),
                scale=self.cc_scale_transforms[k](scale_support))

  def slice_lrp(self, k: int, mean_support, y_hat_pre_lrp):
    """Latent residual prediction: returns (y_hat_k, lrp_k), both [B, h, w, slice_width]."""
    lrp = 0.5 * jnp.tanh(self.lrp_transforms[k](
        jnp.concatenate([mean_support, y_hat_pre_lrp], axis=-1)))
    return y_hat_pre_lrp + lrp, lrp

  def __call__(self, latent_means, latent_scales, action: Callable, y=None, context=None,
               record: list | None = None):
    """Runs all slices (inside one trace) with `action`; returns y_hat [B, h, w, K·slice_width]."""
    return run_slices(
        self.num_slices, self.slice_width,
        lambda k, prev: self.slice_params(k, latent_means, latent_scales, prev, context),
        self.slice_lrp, action, y=y, record=record)
