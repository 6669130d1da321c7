"""FR-ICMH: SA-ICM frozen, encoder-side latent residual coded by an additional codec (eq. 5).

The additional g_a maps x [B, H, W, 3] to y [B, H/16, W/16, 64 N_a]; per slice k <= N_a the
encoder forms y_a,k = y_k - y_hat_m,k (the decoder has y_hat_m, so only the residual is sent).
y_a is coded by the additional hyperprior (it sees y_a: `fr_hyper_input="residual"`, the default;
or the full y: `"y"`, which the decoder never needs since it only decodes z)
and Ch-ARM (optionally also conditioned on y_hat_m: `residual_context="machine"`, our extension).
Fusion y_hat_k = y_hat_m,k + y_hat_a,k for k <= N_a, y_hat_m,k otherwise; x_hat = g_s(y_hat)
with the additional g_s taking M = 320 channels (`icmh_jax.models.latent_fusion`).
Loss R(y_a) + R(z) + lam * 255**2 * mse(x, x_hat).
"""

from icmh_jax.models.latent_fusion import LatentFusion


class FRICMH(LatentFusion):
  """FR-ICMH; params {"base": SA-ICM TCM, "additional": TCM(M = 64 N_a, g_s_in = M)}."""

  def latent_to_code(self, y, y_hat_m):
    y_a = y - y_hat_m[..., :y.shape[-1]]  # eq. 5: only what the machine latent lacks is coded
    return y_a, (y if self.config["fr_hyper_input"] == "y" else None)
