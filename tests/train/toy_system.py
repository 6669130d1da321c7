"""A tiny stand-in System (the registry's API) so the train machinery is tested in seconds.

Conv analysis to y [B, H/4, W/4, C], a hyper-latent z with a `quantiles` parameter and an aux loss,
Gaussian likelihoods with learned scales, transposed-conv synthesis. Not a codec anyone should use.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.special import erf

from icmh_jax.models.system import SystemOutput


def _gauss_lik(v, scale):
  s = jnp.maximum(scale, 0.11)
  cdf = lambda t: 0.5 * (1 + erf(t / (s * jnp.sqrt(2.0))))
  return jnp.maximum(cdf(v + 0.5) - cdf(v - 0.5), 1e-9)


class EntropyBottleneck(nn.Module):
  channels: int

  @nn.compact
  def __call__(self, z):
    q = self.param("quantiles", lambda k: jnp.tile(jnp.array([[-3.0, 0.0, 3.0]]), (self.channels, 1, 1)))
    scale = jnp.exp(self.param("log_scale", nn.initializers.zeros, (self.channels,)))
    return _gauss_lik(z - jax.lax.stop_gradient(q[:, 0, 1]), scale)

  def aux_loss(self):
    q = self.get_variable("params", "quantiles")
    return jnp.sum(jnp.abs(q - jnp.array([-5.0, 0.0, 5.0])))


class ToyCodec(nn.Module):
  C: int = 8

  @nn.compact
  def __call__(self, x, train: bool = False, noise=None):
    y = nn.Conv(self.C, (4, 4), strides=4, name="g_a")(x - 0.5)
    z = nn.Conv(self.C, (2, 2), strides=2, name="h_a")(y)
    if train and noise is None:
      ky, kz = jax.random.split(self.make_rng("noise"))
      noise = {"y": jax.random.uniform(ky, y.shape, minval=-0.5, maxval=0.5),
               "z": jax.random.uniform(kz, z.shape, minval=-0.5, maxval=0.5)}
    if train:
      y_hat, z_hat = y + noise["y"], z + noise["z"]
    else:
      y_hat, z_hat = jnp.round(y), jnp.round(z)
    lik_z = EntropyBottleneck(self.C, name="entropy_bottleneck")(z_hat)
    scales = jnp.exp(nn.ConvTranspose(self.C, (2, 2), strides=(2, 2), name="h_s")(z_hat))
    lik_y = _gauss_lik(y_hat, scales)
    x_hat = nn.ConvTranspose(3, (4, 4), strides=(4, 4), name="g_s")(y_hat / 4.0) + 0.5
    return x_hat, {"y": lik_y, "z": lik_z}


class ToySystem:
  """The System API (init/apply/noise_shapes/aux_loss/trainable_key/trained_layer) over ToyCodec."""

  trained_layer = "machine"

  def __init__(self, C=8):
    self.name, self.module = "toy", ToyCodec(C)

  def __eq__(self, other):  # by value, as System: equal systems share a traced step
    return type(other) is ToySystem and other.module.C == self.module.C

  def __hash__(self):
    return hash(("toy", self.module.C))

  def trainable_key(self):
    return "base"

  def init(self, rng, image_shape):
    x = jnp.zeros((1, *tuple(image_shape)[-3:]))
    return {"base": self.module.init(rng, x)["params"]}

  def noise_shapes(self, image_shape):
    h, w = tuple(image_shape)[-3:-1]
    return {"y": (h // 4, w // 4, self.module.C), "z": (h // 8, w // 8, self.module.C)}

  def apply(self, params, x, *, train, rng=None, noise=None):
    rngs = {"noise": rng} if rng is not None else None
    x_hat, lik = self.module.apply({"params": params["base"]}, x, train=train, noise=noise,
                                   rngs=rngs)
    return SystemOutput(x_hat=x_hat, x_hat_m=x_hat, likelihoods={"machine": lik, "human": {}})

  def aux_loss(self, params):
    return EntropyBottleneck(self.module.C).apply(
        {"params": params["base"]["entropy_bottleneck"]}, method="aux_loss")
