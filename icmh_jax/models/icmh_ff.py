"""ICMH-FF (feature fusion, Shindo et al. MMSP 2024): SA-ICM frozen + an additional LIC-TCM on x; decoder fusion y_hat = y_hat_m + pad(y_hat_a) after LRP."""

from icmh_jax.models.system import System


class ICMHFF(System):
  """Human-layer system; the additional codec lands with the TCM parts."""

  trained_layer = "human"
