"""SA-ICM (and plain LIC-TCM): the machine codec, one TCM coding only the machine layer.

SA-ICM is LIC-TCM (M = 320, num_slices_m = 5) trained with the edge-masked distortion
`R(y) + R(z) + lam * 255**2 * mse(x * m, x_hat * m)` (docs/design.md, eq. 1); `tcm` is the same
codec with a plain MSE loss (m = 1). Both are the base of `icmh_jax.models.system.System` with no
additional codec: x [B, H, W, 3] -> x_hat = x_hat_m [B, H, W, 3], likelihoods {"machine": {y, z}}.
"""

from icmh_jax.models.system import System


class SAICM(System):
  """The machine-only system (`tcm` or `sa_icm`); its `params` are {"base": TCM params}."""

  trained_layer = "machine"
