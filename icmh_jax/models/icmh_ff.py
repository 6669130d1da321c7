"""ICMH-FF (Shindo et al., MMSP 2024), the baseline human layer: decoder-side feature fusion.

SA-ICM is frozen. An additional LIC-TCM codes the image itself, x [B, H, W, 3] -> y_a
[B, H/16, W/16, 64 N_a], with its own 192-channel hyperprior and Ch-ARM (no machine tensor enters
them, as in the public code; `residual_context="machine"` is our extension that lets the Ch-ARM
see y_hat_m). The decoder fuses after both LRPs, y_hat = y_hat_m + pad(y_hat_a) (the first N_a
slices get the sum, the others are y_hat_m), and the additional g_s (M = 320 channels in) gives
x_hat. Loss R(y_a) + R(z_a) + lam * 255**2 * mse(x, x_hat).
"""

from icmh_jax.models import coding
from icmh_jax.models.system import System, call_method, fuse_latents


class ICMHFF(System):
  """ICMH-FF; params {"base": SA-ICM TCM, "additional": TCM(M = 64 N_a, g_s_in = M)}."""

  trained_layer = "human"

  def additional_module(self):
    return self.additional_tcm(g_s_in=self.config["M"],
                               context=self.config["residual_context"] == "machine")

  @staticmethod
  def forward_method(m, x, x_hat_m, y_hat_m, *, train, noise=None, return_intermediates=False):
    context = y_hat_m if m.extra_support_channels else None
    out = m(x, train=train, noise=noise, context=context,
            return_intermediates=return_intermediates)
    y_hat = fuse_latents(y_hat_m, out.y_hat)
    return {"x_hat": m.synthesis(y_hat), "out": out, "g_s_in": y_hat}

  def _context(self, y_hat_m):
    return y_hat_m if self.config["residual_context"] == "machine" else None

  def encode_human(self, params_a, x, y_hat_m, x_hat_m):
    streams, _ = coding.compress_latents(self.additional, params_a, x,
                                         context=self._context(y_hat_m))
    return streams

  def decode_human(self, params_a, streams, z_shape, y_hat_m, x_hat_m):
    y_hat_a = coding.decompress_latents(self.additional, params_a, streams, z_shape,
                                        context=self._context(y_hat_m))
    return call_method(self.additional, params_a, "synthesis", fuse_latents(y_hat_m, y_hat_a))
