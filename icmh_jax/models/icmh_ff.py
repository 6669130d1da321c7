"""ICMH-FF (Shindo et al., MMSP 2024), the baseline human layer: decoder-side feature fusion.

SA-ICM is frozen. An additional LIC-TCM codes the image itself, x [B, H, W, 3] -> y_a
[B, H/16, W/16, 64 N_a], with its own 192-channel hyperprior and Ch-ARM (no machine tensor enters
them, as in the public code; `residual_context="machine"` is our extension that lets the Ch-ARM
see y_hat_m). The decoder fuses after both LRPs, y_hat = y_hat_m + pad(y_hat_a) (the first N_a
slices get the sum, the others are y_hat_m), and the additional g_s (M = 320 channels in) gives
x_hat (`icmh_jax.models.latent_fusion`). Loss R(y_a) + R(z_a) + lam * 255**2 * mse(x, x_hat).
"""

from icmh_jax.models.latent_fusion import LatentFusion


class ICMHFF(LatentFusion):
  """ICMH-FF; params {"base": SA-ICM TCM, "additional": TCM(M = 64 N_a, g_s_in = M)}."""

  def latent_to_code(self, y, y_hat_m):
    return y, None  # the additional codec codes x's own latent
