"""Files that cannot lie: a `.icmh` file decodes to its own picture or raises BitstreamError.

Real tiny systems (random weights, the configs of test_systems.py, so the jitted networks are
shared): a human layer spliced from another file, weights that did not write the file, header
fields the encoder cannot have written, and a model config that gained a defaulted field.
"""

import struct
import zlib

import jax
import numpy as np
import pytest
import skimage.data

from icmh_jax.entropy import container
from icmh_jax.errors import BitstreamError
from icmh_jax.models import coding, registry, scalable
from icmh_jax.models import config as model_config
from tiny_model import TINY

H, W = 100, 120


def _photo(top, left):
  return skimage.data.astronaut()[::2, ::2][top:top + H, left:left + W].astype(np.float32) / 255


@pytest.fixture(scope="module")
def fr():
  """(system, params, a second additional codec's params, a second base's params)."""
  system = registry.get_system("fr_icmh", TINY)
  base = registry.get_system("sa_icm", TINY).init(jax.random.key(0), (1, 64, 64, 3))["base"]
  other_base = registry.get_system("sa_icm", TINY).init(jax.random.key(5), (1, 64, 64, 3))["base"]
  additional = lambda seed: system.init(jax.random.key(seed), (1, 64, 64, 3))["additional"]
  return system, {"base": base, "additional": additional(1)}, additional(2), other_base


@pytest.fixture(scope="module")
def files(fr):
  system, params, _, _ = fr
  return {k: system.compress(params, _photo(*at)) for k, at in (("a", (20, 80)), ("b", (60, 20)))}


def test_human_layer_spliced_from_another_file_is_refused(fr, files):
  system, params, _, _ = fr
  a, b = files["a"], files["b"]
  _, la = container.read_container(a, need_layers=(0, 1))
  _, lb = container.read_container(b, need_layers=(0, 1))
  start_a = len(a) - container.LAYER_HEADER_BYTES - len(la[1])
  start_b = len(b) - container.LAYER_HEADER_BYTES - len(lb[1])
  spliced = a[:start_a] + b[start_b:]  # same system, config and padded size; every CRC valid
  with pytest.raises(BitstreamError, match="human layer does not belong to this file's earlier"):
    system.decompress(params, spliced)
  np.testing.assert_array_equal(system.decompress(params, a[:start_a], layer="machine"),
                                system.decompress(params, a, layer="machine"))


def test_weights_that_did_not_write_the_file_are_refused_naming_both_fingerprints(fr, files):
  system, params, other_additional, other_base = fr
  data = files["a"]
  wrote = scalable.params_fingerprint(params["additional"]).hex()
  other = scalable.params_fingerprint(other_additional).hex()
  assert wrote != other
  with pytest.raises(BitstreamError, match=f"human layer was coded with parameters {wrote}, but "
                                           f"this model's are {other}"):
    system.decompress({**params, "additional": other_additional}, data)
  # The machine layer needs only the base: another additional codec decodes it exactly.
  np.testing.assert_array_equal(
      system.decompress({**params, "additional": other_additional}, data, layer="machine"),
      system.decompress(params, data, layer="machine"))
  with pytest.raises(BitstreamError, match="machine layer was coded with parameters "
                                           f"{scalable.params_fingerprint(params['base']).hex()}"):
    system.decompress({**params, "base": other_base}, data, layer="machine")


def test_fingerprint_covers_values_names_and_shapes():
  a = {"k": np.arange(6, dtype=np.float32)}
  fp = scalable.params_fingerprint(a)
  assert len(fp) == 8 and fp == scalable.params_fingerprint({"k": jax.numpy.asarray(a["k"])})
  assert fp != scalable.params_fingerprint({"k": a["k"] + np.float32(1e-7)})
  assert fp != scalable.params_fingerprint({"j": a["k"]})
  assert fp != scalable.params_fingerprint({"k": a["k"].reshape(2, 3)})


def test_header_fields_the_encoder_cannot_write_are_refused(fr, files):
  system, params, _, _ = fr
  data = files["a"]
  header, layers = container.read_container(data, need_layers=(0, 1))
  fps = {i: scalable.params_fingerprint(params[p]) for i, p in ((0, "base"), (1, "additional"))}
  assert header.pad == coding.pads_for(H, W, 128) == (14, 14, 4, 4)
  # Pads shifted within the same padded size, every checksum and link recomputed:
  shifted = container.Header(header.system, header.config_digest, H, W, (10, 18, 4, 4))
  with pytest.raises(BitstreamError, match=r"padding \(10, 18, 4, 4\) is not what the encoder "
                                           r"writes for a 100x120 image \(\(14, 14, 4, 4\)\)"):
    system.decompress(params, container.write_container(shifted, layers, fps))
  # A consistent edit (one row less, its own pads) with only the header CRC recomputed:
  edited = _rewrite_sizes(data, H - 1, coding.pads_for(H - 1, W, 128))
  assert container._read_header(edited)[0].height == H - 1
  with pytest.raises(BitstreamError, match="machine layer does not belong to this file's header"):
    system.decompress(params, edited, layer="machine")


def _rewrite_sizes(data, height, pad):
  """`data` with the header's height and pads replaced and the header CRC recomputed."""
  end = 6 + data[5] + container.DIGEST_BYTES  # magic, version, name length, name, digest
  width, count = struct.unpack_from("<I", data, end + 4)[0], data[end + 16]
  head = data[:end] + struct.pack("<IIHHHHB", height, width, *pad, count)
  return head + struct.pack("<I", zlib.crc32(head)) + data[len(head) + 4:]


def test_old_file_decodes_after_a_defaulted_config_field_is_added(fr, files, monkeypatch):
  system, params, _, _ = fr
  data = files["a"]
  before = system.decompress(params, data)
  monkeypatch.setitem(model_config.DEFAULTS, "new_knob", 7)  # a later version's new field
  newer = registry.get_system("fr_icmh", TINY)
  assert newer.config["new_knob"] == 7 and scalable.config_digest(newer) == \
      scalable.config_digest(system)
  np.testing.assert_array_equal(newer.decompress(params, data), before)
  # A digest of the whole config (the old rule) would have refused the file:
  whole = lambda s: container.config_digest({"system": s.name, "model": s.config})
  assert whole(newer) != whole(system)
  # Setting the new field to another value is another model: refused.
  changed = registry.get_system("fr_icmh", {**TINY, "new_knob": 8})
  with pytest.raises(BitstreamError, match="another 'fr_icmh' config"):
    changed.decompress(params, data)
