"""PR-ICMH: SA-ICM frozen; pixel residual x_d = x - x_hat_m coded by an additional LIC-TCM (eq. 6)."""

from icmh_jax.models.system import System


class PRICMH(System):
  """Human-layer system; the additional codec lands with the TCM parts."""

  trained_layer = "human"
