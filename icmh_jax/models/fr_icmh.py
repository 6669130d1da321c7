"""FR-ICMH: SA-ICM frozen, encoder-side latent residual coded by an additional codec (eq. 5).

The additional g_a maps x [B, H, W, 3] to y [B, H/16, W/16, 64 N_a]; per slice k <= N_a the
encoder forms y_a,k = y_k - y_hat_m,k (the decoder has y_hat_m, so only the residual is sent).
y_a is coded by the additional hyperprior (it sees y_a: `fr_hyper_input="residual"`, the default;
or the full y: `"y"`, which the decoder never needs since it only decodes z)
and Ch-ARM (optionally also conditioned on y_hat_m: `residual_context="machine"`, our extension).
Fusion y_hat_k = y_hat_m,k + y_hat_a,k for k <= N_a, y_hat_m,k otherwise; x_hat = g_s(y_hat)
with the additional g_s taking M = 320 channels. Loss R(y_a) + R(z) + lam * 255**2 * mse(x, x_hat).
"""

import functools

from icmh_jax.models import coding
from icmh_jax.models.system import System, call_method, fuse_latents


class FRICMH(System):
  """FR-ICMH; params {"base": SA-ICM TCM, "additional": TCM(M = 64 N_a, g_s_in = M)}."""

  trained_layer = "human"

  def additional_module(self):
    return self.additional_tcm(g_s_in=self.config["M"],
                               context=self.config["residual_context"] == "machine")

  @property
  def _hyper_y(self) -> bool:
    """Whether the hyperprior sees the full y rather than the residual y_a."""
    return self.config["fr_hyper_input"] == "y"

  @property
  def forward_method(self):
    return functools.partial(_forward, hyper_y=self._hyper_y)

  def _context(self, y_hat_m):
    return y_hat_m if self.config["residual_context"] == "machine" else None

  def encode_human(self, params_a, x, y_hat_m, x_hat_m):
    y = call_method(self.additional, params_a, "analysis", x)
    # y_hat_m is the decoder's own (decoded) machine latent, so the residual is exact.
    y_a = y - y_hat_m[..., :y.shape[-1]]
    streams, _ = coding.compress_y(self.additional, params_a, y_a, context=self._context(y_hat_m),
                                   hyper_input=y if self._hyper_y else None)
    return streams

  def decode_human(self, params_a, streams, z_shape, y_hat_m, x_hat_m):
    y_hat_a = coding.decompress_y(self.additional, params_a, streams, z_shape,
                                  context=self._context(y_hat_m))
    return call_method(self.additional, params_a, "synthesis", fuse_latents(y_hat_m, y_hat_a))


def _forward(m, x, x_hat_m, y_hat_m, *, hyper_y, train, noise=None, return_intermediates=False):
  """Runs inside `additional.apply`: (x, machine outputs) -> `run_additional`'s dict."""
  context = y_hat_m if m.extra_support_channels else None
  y = m.analysis(x)
  y_a = y - y_hat_m[..., :y.shape[-1]]  # eq. 5: only what the machine latent lacks is coded
  out = m.code_y(y_a, train=train, noise=noise, context=context,
                 return_intermediates=return_intermediates, hyper_input=y if hyper_y else None)
  y_hat = fuse_latents(y_hat_m, out.y_hat)
  return {"x_hat": m.synthesis(y_hat), "out": out, "g_s_in": y_hat}
