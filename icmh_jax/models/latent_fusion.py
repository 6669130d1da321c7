"""The latent-fusion human layer shared by ICMH-FF and FR-ICMH: y_hat = y_hat_m + pad(y_hat_a).

SA-ICM is frozen. An additional LIC-TCM (M = 64 N_a, its g_s taking the machine M = 320 channels)
maps x [B, H, W, 3] to y [B, H/16, W/16, 64 N_a]; a system's `latent_to_code` turns y into the
latent y_a that its hyperprior and Ch-ARM code (ICMH-FF: y itself; FR-ICMH: the residual
y - y_hat_m, eq. 5). The decoder adds y_hat_a into the first N_a slices of y_hat_m, both after
their LRP, forwards the other machine slices, and x_hat = g_s(y_hat). The forward, the encoder and
the decoder below are the one copy of that path; the additional Ch-ARM sees y_hat_m exactly when
`System.machine_context` says so.
"""

import jax.numpy as jnp

from icmh_jax.models import coding
from icmh_jax.models.coding import call_method
from icmh_jax.models.system import System


def fuse_latents(y_hat_m, y_hat_a):
  """y_hat = y_hat_m + pad(y_hat_a): adds y_hat_a [.., 64 N_a] into the first slices of y_hat_m
  [.., M] and forwards the others (ICMH-FF fusion, FR-ICMH eq. 5); both after their LRP."""
  c = y_hat_a.shape[-1]
  return jnp.concatenate([y_hat_m[..., :c] + y_hat_a, y_hat_m[..., c:]], axis=-1)


class LatentFusion(System):
  """A human layer fused in the latent domain; params {"base": SA-ICM TCM, "additional":
  TCM(M = 64 N_a, g_s_in = M)}. Subclasses define `latent_to_code`."""

  trained_layer = "human"

  def additional_module(self):
    return self.additional_tcm(g_s_in=self.config["M"])

  def latent_to_code(self, y, y_hat_m):
    """(y_a, hyper_input): the latent the additional codec codes, given its g_a output y
    [B, h, w, 64 N_a] and the decoded machine latent y_hat_m [B, h, w, M], and what its h_a sees
    instead of y_a (None: y_a itself). Runs in the forward (traced) and the encoder alike."""
    raise NotImplementedError

  def forward_method(self, m, x, x_hat_m, y_hat_m, *, train, noise=None,
                     return_intermediates=False) -> dict:
    y_a, hyper_input = self.latent_to_code(m.analysis(x), y_hat_m)
    out = m.code_y(y_a, train=train, noise=noise, context=self.context(y_hat_m),
                   return_intermediates=return_intermediates, hyper_input=hyper_input)
    y_hat = fuse_latents(y_hat_m, out.y_hat)
    return {"x_hat": m.synthesis(y_hat), "out": out, "g_s_in": y_hat}

  def encode_human(self, params_a, x, y_hat_m, x_hat_m):
    # y_hat_m is the decoder's own (decoded) machine latent, so a residual against it is exact.
    y = call_method(self.additional, params_a, "analysis", x)
    y_a, hyper_input = self.latent_to_code(y, y_hat_m)
    streams, _ = coding.compress_y(self.additional, params_a, y_a, context=self.context(y_hat_m),
                                   hyper_input=hyper_input)
    return streams

  def decode_human(self, params_a, streams, z_shape, y_hat_m, x_hat_m):
    y_hat_a = coding.decompress_y(self.additional, params_a, streams, z_shape,
                                  context=self.context(y_hat_m))
    return call_method(self.additional, params_a, "synthesis", fuse_latents(y_hat_m, y_hat_a))
