"""PR-ICMH: SA-ICM frozen, pixel residual coded by an additional LIC-TCM (eq. 6).

x_d = x - clip(x_hat_m, 0, 1): the residual is taken against the *clamped* machine
reconstruction, the image a machine decoder outputs, in the forward, compress and decompress
alike. An additional LIC-TCM with M = 64 N_a (g_s in 64 N_a) codes x_d [B, H, W, 3] and
x_hat = clip(x_hat_m, 0, 1) + x_hat_d, so mse(x, x_hat) = mse(x_d, x_hat_d) as in eq. 6.
Loss R(y_d) + R(z_d) + lam * 255**2 * mse(x_d, x_hat_d).
"""

import jax.numpy as jnp

from icmh_jax.errors import ConfigError
from icmh_jax.models import coding
from icmh_jax.models.coding import call_method
from icmh_jax.models.system import System


class PRICMH(System):
  """PR-ICMH; params {"base": SA-ICM TCM, "additional": TCM(M = 64 N_a)}."""

  trained_layer = "human"

  def __init__(self, name, config):
    if config["residual_context"] != "none":
      raise ConfigError(f"residual_context={config['residual_context']!r} applies to fr_icmh "
                        f"and icmh_ff; pr_icmh codes pixels and takes 'none'")
    super().__init__(name, config)

  def additional_module(self):
    return self.additional_tcm()

  def forward_method(self, m, x, x_hat_m, y_hat_m, *, train, noise=None,
                     return_intermediates=False):
    x_m = jnp.clip(x_hat_m, 0.0, 1.0)
    out = m(x - x_m, train=train, noise=noise, return_intermediates=return_intermediates)
    return {"x_hat": x_m + out.x_hat, "out": out, "g_s_in": out.y_hat}

  def encode_human(self, params_a, x, y_hat_m, x_hat_m):
    x_d = x - jnp.clip(x_hat_m, 0.0, 1.0)
    y_d = call_method(self.additional, params_a, "analysis", x_d)
    streams, _ = coding.compress_y(self.additional, params_a, y_d)
    return streams

  def decode_human(self, params_a, streams, z_shape, y_hat_m, x_hat_m):
    y_hat_d = coding.decompress_y(self.additional, params_a, streams, z_shape)
    return jnp.clip(x_hat_m, 0.0, 1.0) + call_method(self.additional, params_a, "synthesis",
                                                     y_hat_d)
