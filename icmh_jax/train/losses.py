"""The rate-distortion loss shared by every system (no system name is special-cased).

  loss = R + lam * 255**2 * mse(m * x, m * x_hat_t)

R is the bpp of the trained layer, sum over {y, z} of sum(log likelihoods) / (-ln 2 * B * H * W);
x_hat_t is `x_hat_m` when the trained layer is "machine" and `x_hat` otherwise; m is the SAM edge
map for SA-ICM (eq. 1, `config.loss.mask == "edges"`) and 1 otherwise.
"""

import math

import jax
import jax.numpy as jnp

from icmh_jax.errors import ConfigError

MASKS = ("none", "edges")


def bpp(likelihoods: dict, num_pixels) -> jax.Array:
  """Estimated bits per pixel of a layer's likelihoods {"y": ..., "z": ...} (any shapes)."""
  bits = sum(jnp.sum(jnp.log(lik.astype(jnp.float32))) for lik in likelihoods.values())
  return bits / (-math.log(2.0) * num_pixels)


def reconstruction(out, trained_layer: str) -> jax.Array:
  """The trained layer's reconstruction x_hat_t of a SystemOutput."""
  return out.x_hat_m if trained_layer == "machine" else out.x_hat


def distortion_mask(batch, mask: str, x) -> jax.Array:
  """m [B, H, W, 1] (float32): the edge map of the batch, or ones."""
  if mask not in MASKS:
    raise ConfigError(f"config.loss.mask={mask!r} is not allowed; choose one of {', '.join(MASKS)}")
  if mask == "none":
    return jnp.ones(x.shape[:-1] + (1,), x.dtype)
  edges = batch["edges"]
  return edges.reshape(x.shape[:-1] + (1,)).astype(x.dtype)


def rate_distortion(out, x, m, *, trained_layer: str, lam: float):
  """Loss and metrics of one forward.

  Args:
    out: SystemOutput with x_hat / x_hat_m [B, H, W, 3] and likelihoods per layer.
    x: [B, H, W, 3] float32 in [0, 1].
    m: [B, H, W, 1] distortion mask (ones, or the edge map).
    trained_layer: "machine" or "human": whose rate and reconstruction the loss uses.
    lam: the rate-distortion trade-off.

  Returns:
    (loss, metrics) with metrics `loss`, `bpp/<layer>` (each layer present), `mse` (the masked
    distortion term's mse), `psnr` (of the unmasked x_hat_t clipped to [0, 1]) and `psnr_masked`
    (the same on the pixels where m > 0, for a 0/1 mask).
  """
  b, h, w, _ = x.shape
  x_hat = reconstruction(out, trained_layer).astype(jnp.float32)
  rates = {layer: bpp(lik, b * h * w) for layer, lik in out.likelihoods.items() if lik}
  mse = jnp.mean(jnp.square(m * x - m * x_hat))
  loss = rates[trained_layer] + lam * 255.0**2 * mse
  sq = jnp.square(x - jnp.clip(x_hat, 0.0, 1.0))
  # PSNR on the pixels the mask weights (all of them when m = 1): an edge map's quality measure.
  masked_mse = jnp.sum(m * sq) / jnp.maximum(jnp.sum(m) * x.shape[-1], 1.0)
  metrics = {"loss": loss, "mse": mse, "psnr": _psnr(jnp.mean(sq)), "psnr_masked": _psnr(masked_mse)}
  metrics.update({f"bpp/{layer}": r for layer, r in rates.items()})
  return loss, metrics


def _psnr(mse):
  return -10.0 * jnp.log10(jnp.maximum(mse, 1e-10))
