"""Compress / decompress for a TCM: jitted networks, range coding (constriction) outside jit.

Coding order: z (all elements, NHWC order, table = channel), then y slice by slice (NHWC order
inside a slice, table = scale-table index of build_indexes(σ_k)) in one stream. The decoder runs
the same per-slice loop (`channel_arm.run_slices`) with the same per-slice jitted functions as the
encoder, so μ, σ and the indexes are bit-identical on both sides; floats never cross the channel.

Functions here know nothing of containers: they return / take a list of byte strings and a shape,
so the ICMH systems can stack two codecs (with an optional Ch-ARM `context`) in one file
(`icmh_jax.models.scalable`, the one public compress / decompress path). `call_method` is the one
way any module method runs under jit.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.entropy import gaussian
from icmh_jax.entropy.coder import SymbolDecoder, SymbolEncoder
from icmh_jax.entropy.tables import factorized_tables, gaussian_tables
from icmh_jax.errors import IcmhError
from icmh_jax.models.channel_arm import run_slices

@functools.partial(jax.jit, static_argnames=("model", "method", "static"))
def call_method(model: nn.Module, params, method: str, *args, static: tuple = ()):
  """`model.apply({"params": params}, *static, *args, method=method)`, jitted per (model, method,
  static).

  The one way a module method runs under jit: the encoder and the decoder both go through it, so
  they run the same compiled function. `static` holds hashable leading arguments (a slice index).
  """
  return model.apply({"params": params}, *static, *args, method=method)


def _medians(params) -> np.ndarray:
  return np.asarray(params["entropy_bottleneck"]["quantiles"], np.float32)[:, 0, 1]


def _z_indexes(shape) -> np.ndarray:
  return np.broadcast_to(np.arange(shape[-1], dtype=np.int32), shape)


def _slices(model, params, latent_means, latent_scales, action, y=None, context=None):
  """The shared Ch-ARM loop with per-slice jitted networks."""
  return run_slices(
      model.num_slices, model.slice_width,
      lambda k, prev: call_method(model, params, "slice_entropy_params", latent_means,
                                  latent_scales, prev, context, static=(k,)),
      lambda k, ms, yh: call_method(model, params, "slice_lrp", ms, yh, static=(k,)), action, y=y)


def _encode(encoder, symbols, indexes):
  try:
    encoder.encode(symbols, indexes)
  except ValueError as e:  # the only data-dependent refusal: a symbol past ±2^15
    raise IcmhError(f"cannot code this image: {e}; the model's latents are far outside any "
                    f"trained range (an untrained or diverged checkpoint?)") from e


def compress_y(model, params, y, context=None, return_symbols: bool = False, hyper_input=None):
  """Codes a latent y (the TCM's own g_a output, or FR-ICMH's residual) with the hyperprior.

  Args:
    model: a `TCM` (its h_a, h_*_s, entropy_bottleneck and ch_arm are used).
    params: its params.
    y: [B, h, w, M], h and w multiples of 4.
    context: optional [B, h, w, extra_support_channels] Ch-ARM context (decoder must have it).
    return_symbols: also return {"z_symbols", "y_symbols", "y_indexes", "y_hat"} (NHWC).
    hyper_input: what h_a sees instead of y (FR-ICMH `fr_hyper_input="y"`); same shape as y.

  Returns:
    (streams [z bytes, y bytes], z_shape (B, h/4, w/4)) [+ symbols dict].
  """
  y = jnp.asarray(y, jnp.float32)
  h_in = y if hyper_input is None else jnp.asarray(hyper_input, jnp.float32)
  z = np.asarray(call_method(model, params, "hyper_analysis", h_in))
  med = _medians(params)
  z_sym = np.rint(z - med).astype(np.int32)
  z_enc = SymbolEncoder(factorized_tables(params["entropy_bottleneck"]))
  _encode(z_enc, z_sym, _z_indexes(z_sym.shape))
  z_hat = jnp.asarray(z_sym.astype(np.float32) + med)
  latent_means, latent_scales = call_method(model, params, "hyper_synthesis", z_hat)
  y_enc = SymbolEncoder(gaussian_tables(gaussian.scale_table()))
  y_np, syms, idxs = np.asarray(y), [], []

  def action(k, y_k, mu, scale):
    mu = np.asarray(mu)
    sym = np.rint(np.asarray(y_k) - mu).astype(np.int32)
    idx = gaussian.build_indexes(np.asarray(scale))
    _encode(y_enc, sym, idx)
    syms.append(sym)
    idxs.append(idx)
    return jnp.asarray(sym.astype(np.float32) + mu)

  y_hat = _slices(model, params, latent_means, latent_scales, action, y=y_np, context=context)
  streams = [z_enc.finish(), y_enc.finish()]
  if not return_symbols:
    return streams, tuple(z_sym.shape[:3])
  return streams, tuple(z_sym.shape[:3]), {
      "z_symbols": z_sym, "y_symbols": np.concatenate(syms, -1),
      "y_indexes": np.concatenate(idxs, -1), "y_hat": y_hat}


def decompress_y(model, params, streams, z_shape, context=None):
  """Inverse of `compress_y`: returns y_hat [B, 4h', 4w', M] (after LRP), a JAX array.

  Raises:
    BitstreamError: corrupt or truncated streams.
    ValueError: wrong number of streams or a bad shape.
  """
  if len(streams) != 2:
    raise ValueError(f"a TCM codes 2 streams (z, y), got {len(streams)}")
  b, hz, wz = (int(v) for v in z_shape)
  if min(b, hz, wz) <= 0:
    raise ValueError(f"z shape {tuple(z_shape)} must be positive")
  med = _medians(params)
  z_dec = SymbolDecoder(factorized_tables(params["entropy_bottleneck"]), streams[0])
  z_sym = z_dec.decode(_z_indexes((b, hz, wz, med.size)))
  z_dec.finish()
  z_hat = jnp.asarray(z_sym.astype(np.float32) + med)
  latent_means, latent_scales = call_method(model, params, "hyper_synthesis", z_hat)
  y_dec = SymbolDecoder(gaussian_tables(gaussian.scale_table()), streams[1])

  def action(k, y_k, mu, scale):
    mu = np.asarray(mu)
    sym = y_dec.decode(gaussian.build_indexes(np.asarray(scale)))
    return jnp.asarray(sym.astype(np.float32) + mu)

  y_hat = _slices(model, params, latent_means, latent_scales, action, context=context)
  y_dec.finish()
  return y_hat


def pads_for(height: int, width: int, multiple: int) -> tuple:
  """(top, bottom, left, right) zero padding up to multiples of `multiple`: floor(pad/2) top and
  left, the rest bottom and right (LIC-TCM's eval)."""
  ph, pw = -height % multiple, -width % multiple
  return (ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)


def pad_image(x, multiple: int):
  """Zero-pads [B, H, W, C] to multiples of `multiple` (`pads_for`).

  Returns:
    (padded array, (top, bottom, left, right)).
  """
  pads = pads_for(x.shape[1], x.shape[2], multiple)
  return np.pad(x, ((0, 0), pads[:2], pads[2:], (0, 0))), pads
