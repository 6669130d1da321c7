"""Two-layer coding: one `.icmh` file holding the machine layer and the human layer.

Layer 0 (machine) = SA-ICM's z and y streams; layer 1 (human) = the additional codec's streams.
The header (`icmh_jax.entropy.container`) carries the system name, the digest of its model config
and the image size with its padding. Images are zero-padded to a multiple of `pad_multiple`
(floor(pad/2) top/left, like LIC-TCM's eval) and cropped back after decoding.

What a decoder checks before any network runs, so that no accident gives a wrong picture:
  - the config digest (`config_digest`, rule `DIGEST_RULE`): the system name and the model config
    fields that differ from their defaults, so a field added later with a default leaves every
    older file decodable;
  - the size fields: the padding must be what `compress` writes for the image size, and the
    padded size must fit `MAX_PIXELS`;
  - each needed layer's params fingerprint (`params_fingerprint`: layer 0 of params["base"],
    layer 1 of params["additional"]) against the decoding parameters';
  - the container's links (a layer spliced from another file, or behind an edited header, fails).

The encoder derives everything the human layer needs from the machine layer exactly as the
decoder will (the decoded y_hat_m from the same per-slice jitted nets, x_hat_m from the same
jitted g_s), so a decoder that sees only layer 0 gets SA-ICM's x_hat_m, and one that sees both
gets the human x_hat. tcm / sa_icm files hold layer 0 only; their "human" decode is x_hat_m.
"""

import hashlib

import jax
import numpy as np

from icmh_jax.entropy import container
from icmh_jax.errors import BitstreamError
from icmh_jax.models import coding
from icmh_jax.models.coding import call_method
from icmh_jax.models.config import DEFAULTS

LATENT_STRIDE = 64  # x -> z downsampling; pad_multiple is a multiple of it
STREAMS_PER_LAYER = 2  # z, y
LAYERS = tuple(container.LAYER_NAMES.values())  # ("machine", "human"), by layer id
# Largest padded image a file may claim (~11585^2): a corrupt or hostile header is refused before
# the decoder allocates latents for it (the container alone allows 65536^2).
MAX_PIXELS = 2 ** 27


# What the header's config digest covers; a change to this rule is a new container version.
# Rule 1: the system name and every model config field whose value differs from its default
# (`models.config.DEFAULTS`). A field added later with a default is thus left out of every digest
# that does not set it, and older files keep decoding; an existing default must never change.
DIGEST_RULE = 1
_PARAM_PARTS = {0: "base", 1: "additional"}  # the params subtree that codes each layer


def config_digest(system) -> bytes:
  """16-byte digest of the system name and its non-default model config (`DIGEST_RULE`)."""
  changed = {k: v for k, v in system.config.items() if k not in DEFAULTS or v != DEFAULTS[k]}
  return container.config_digest({"rule": DIGEST_RULE, "system": system.name, "model": changed})


_FINGERPRINTS = {}  # ids of a tree's jax.Array leaves -> (the leaves, their fingerprint)


def params_fingerprint(params) -> bytes:
  """8 bytes of SHA-256 over a parameter tree's key paths, dtypes, shapes and values.

  Trees of JAX arrays (immutable) are remembered, so a decoder that codes many images with one
  set of weights hashes them once.
  """
  leaves = jax.tree_util.tree_leaves_with_path(params)
  key = tuple(id(x) for _, x in leaves)
  cacheable = all(isinstance(x, jax.Array) for _, x in leaves)
  if cacheable and key in _FINGERPRINTS:
    return _FINGERPRINTS[key][1]
  digest = hashlib.sha256()
  for path, x in leaves:
    a = np.ascontiguousarray(np.asarray(x))
    digest.update(f"{jax.tree_util.keystr(path)}|{a.dtype.str}|{a.shape}|".encode())
    digest.update(a.data)
  fingerprint = digest.digest()[:container.FINGERPRINT_BYTES]
  if cacheable:
    if len(_FINGERPRINTS) >= 8:
      _FINGERPRINTS.pop(next(iter(_FINGERPRINTS)))
    _FINGERPRINTS[key] = (leaves, fingerprint)
  return fingerprint


def _fingerprints(params, layers) -> dict:
  return {i: params_fingerprint(params[_PARAM_PARTS[i]]) for i in layers}


def _as_image(image) -> np.ndarray:
  x = np.asarray(image)
  if x.ndim != 3 or x.shape[-1] != 3 or min(x.shape[:2]) < 1:
    raise ValueError(f"image must be [H, W, 3] floats in [0, 1], got shape {x.shape}")
  if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x)):
    raise ValueError(f"image must hold finite floats in [0, 1], got dtype {x.dtype}")
  return x.astype(np.float32)[None]


def compress(system, params, image) -> bytes:
  """Codes an image into a `.icmh` file.

  Args:
    system: a `icmh_jax.models.system.System` (this module reads its `name`, `config`, `base`,
      `has_additional` and human-layer hooks, and imports no system class).
    params: its params ({"base"} or {"base", "additional"}).
    image: [H, W, 3] float in [0, 1].

  Returns:
    The file's bytes: layer 0 always, layer 1 for the human-layer systems.
  """
  x = _as_image(image)
  padded, pads = coding.pad_image(x, system.config["pad_multiple"])
  y = call_method(system.base, params["base"], "analysis", padded)
  streams_m, _, sym = coding.compress_y(system.base, params["base"], y, return_symbols=True)
  layers = {0: container.pack_streams(streams_m)}
  if system.has_additional:
    y_hat_m = sym["y_hat"]
    x_hat_m = call_method(system.base, params["base"], "synthesis", y_hat_m)
    streams_a = system.encode_human(params["additional"], padded, y_hat_m, x_hat_m)
    layers[1] = container.pack_streams(streams_a)
  header = container.Header(system.name, config_digest(system), x.shape[1], x.shape[2],
                             tuple(int(p) for p in pads))
  return container.write_container(header, layers, _fingerprints(params, layers))


def _z_shape(header, pad_multiple: int) -> tuple:
  top, bottom, left, right = header.pad
  if max(header.pad) >= pad_multiple:
    raise BitstreamError(f"header padding {header.pad} is not below the model's pad multiple "
                         f"{pad_multiple}")
  want = coding.pads_for(header.height, header.width, pad_multiple)
  if header.pad != want:
    raise BitstreamError(f"header padding {header.pad} is not what the encoder writes for a "
                         f"{header.height}x{header.width} image ({want}): the header was edited")
  h, w = header.height + top + bottom, header.width + left + right
  if h * w > MAX_PIXELS:
    raise BitstreamError(f"header claims a {h}x{w} (padded) image, more than the decoder's "
                         f"limit of {MAX_PIXELS} pixels")
  return (1, h // LATENT_STRIDE, w // LATENT_STRIDE)


def decompress(system, params, data: bytes, layer: str = "human") -> np.ndarray:
  """Decodes a `.icmh` file written by `compress` with the same system and config.

  Args:
    system, params: the decoding system (name and config digest must match the header).
    data: the file's bytes (for layer "machine", everything after layer 0 may be missing).
    layer: "machine" (SA-ICM's x_hat_m, from layer 0 only) or "human".

  Returns:
    float32 [H, W, 3] in [0, 1].

  Raises:
    BitstreamError: wrong system, config or weights, a corrupt, edited, spliced or truncated
      file, a missing layer.
    ValueError: an unknown layer name.
  """
  if layer not in LAYERS:
    raise ValueError(f"layer must be one of {', '.join(LAYERS)}, got {layer!r}")
  human = layer == "human" and system.has_additional
  need = (0, 1) if human else (0,)
  header, layers = container.read_container(
      data, expect_system=system.name, expect_digest=config_digest(system), need_layers=need)
  z_shape = _z_shape(header, system.config["pad_multiple"])
  # The header is sound: now the weights (hashing them is the one costly check).
  container.read_container(data, need_layers=need,
                           expect_fingerprints=_fingerprints(params, need))
  streams_m = container.unpack_streams(layers[0], STREAMS_PER_LAYER)
  y_hat_m = coding.decompress_y(system.base, params["base"], streams_m, z_shape)
  x_hat = call_method(system.base, params["base"], "synthesis", y_hat_m)
  if human:
    streams_a = container.unpack_streams(layers[1], STREAMS_PER_LAYER)
    x_hat = system.decode_human(params["additional"], streams_a, z_shape, y_hat_m, x_hat)
  top, _, left, _ = header.pad
  x_hat = np.clip(np.asarray(x_hat, np.float32)[0], 0.0, 1.0)
  return x_hat[top:top + header.height, left:left + header.width]


def describe(data: bytes) -> dict:
  """System, image size, bytes and bpp per layer of a `.icmh` file (no model needed).

  Returns:
    {"system", "height", "width", "file_bytes", "file_bpp", "layers": {"machine": {"bytes",
    "bpp"}, "human": {...} or None when absent}, "has_human_layer": whether the encoder wrote
    one (the header's layer count)}; bpp = 8 * bytes / (H * W).
  """
  header, layers = container.read_container(data, need_layers=(0,))
  pixels = header.height * header.width
  per_layer = {}
  for i, name in container.LAYER_NAMES.items():
    n = len(layers[i]) if i in layers else None
    per_layer[name] = None if n is None else {"bytes": n, "bpp": 8.0 * n / pixels}
  has_human = header.layer_count > 1
  return {"system": header.system, "height": header.height, "width": header.width,
          "has_human_layer": has_human,
          "pad": list(header.pad), "file_bytes": len(data), "file_bpp": 8.0 * len(data) / pixels,
          "layers": per_layer}
