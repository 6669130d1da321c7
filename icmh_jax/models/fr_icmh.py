"""FR-ICMH: SA-ICM frozen; encoder-side latent residual y_a,k = y_k - y_hat_m,k for k <= N_a (eq. 5)."""

from icmh_jax.models.system import System


class FRICMH(System):
  """Human-layer system; the additional codec lands with the TCM parts."""

  trained_layer = "human"
