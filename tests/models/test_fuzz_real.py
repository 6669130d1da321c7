"""A fuzzer through the real decoder: mutated `.icmh` files of tiny real systems (random weights)
go through the container, the range coder and the networks, for both layers and for `icmh info`.

Every outcome must be the exact original picture or a library error (`IcmhError`); a crash (any
other exception), a decode slower than `DECODE_LIMIT_S` or a different picture fails. The
mutations: bit flips, byte sets, truncation at and around every layer boundary, header fields set
to extremes with and without a recomputed header CRC, inflated lengths, layers swapped between
files, dropped, relabelled and spliced, appended garbage, and payloads damaged behind valid CRCs,
links and fingerprints (so the range coder and the networks meet the damage). Shapes are fixed (every image is
100x120, padded to 128x128), so each network compiles once, shared with test_systems.py.
"""

import struct
import time
import zlib

import jax
import numpy as np
import pytest
import skimage.data

from icmh_jax.entropy import container
from icmh_jax.errors import IcmhError
from icmh_jax.models import registry, scalable
from tiny_model import TINY

SYSTEMS = ("sa_icm", "icmh_ff", "fr_icmh", "pr_icmh")
H, W = 100, 120
CROPS = ((20, 80), (60, 20), (120, 130))  # three photos of one size
DECODE_LIMIT_S = 30.0  # a hang or a runaway allocation shows up as a slow decode
_SIZES = struct.Struct("<IIHHHHB")
_LAYER = struct.Struct("<BI8s8sI")


@pytest.fixture(scope="module")
def corpus():
  """{system name: (system, params, [file bytes], [{layer: decoded picture}])}."""
  base = registry.get_system("sa_icm", TINY).init(jax.random.key(0), (1, 64, 64, 3))["base"]
  photo = skimage.data.astronaut()[::2, ::2].astype(np.float32) / 255
  out = {}
  for name in SYSTEMS:
    system = registry.get_system(name, TINY)
    params = {"base": base}
    if system.has_additional:
      params["additional"] = system.init(jax.random.key(1), (1, 64, 64, 3))["additional"]
    files = [system.compress(params, photo[t:t + H, l:l + W]) for t, l in CROPS]
    pictures = [{layer: system.decompress(params, f, layer) for layer in scalable.LAYERS}
                for f in files]
    out[name] = system, params, files, pictures
  return out


def _layout(data):
  """(header end, [(record start, payload start, payload end)]) of a valid file."""
  end = 6 + data[5] + container.DIGEST_BYTES + _SIZES.size + 4
  records, pos = [], end
  while pos < len(data):
    length = _LAYER.unpack_from(data, pos)[1]
    records.append((pos, pos + _LAYER.size, pos + _LAYER.size + length))
    pos += _LAYER.size + length
  return end, records


def _with_sizes(data, crc: bool, **fields):
  """`data` with header size fields replaced (height, width, pad, count), the header CRC
  recomputed or left stale."""
  end, _ = _layout(data)
  at = end - 4 - _SIZES.size
  h, w, *pad, count = _SIZES.unpack_from(data, at)
  values = {**dict(height=h, width=w, pad=tuple(pad), count=count), **fields}
  head = data[:at] + _SIZES.pack(values["height"], values["width"], *values["pad"],
                                 values["count"])
  stamp = struct.pack("<I", zlib.crc32(head)) if crc else data[end - 4:end]
  return head + stamp + data[end:]


def structured(data, other):
  """The deterministic mutations of `data` (`other`: a second file of the same system)."""
  end, records = _layout(data)
  _, other_records = _layout(other)
  cuts = {0, 4, 5, end - 4, end - 1, end, len(data) - 1}
  for start, payload, stop in records:
    cuts |= {start - 1, start, start + 1, start + 5, payload - 1, payload, payload + 1, stop - 1,
             stop, stop + 1}
  for cut in sorted(c for c in cuts if 0 <= c < len(data)):
    yield f"truncate@{cut}", data[:cut]
  for garbage in (b"\0", b"\xff" * 7, bytes(range(256)), data):
    yield f"append{len(garbage)}", data + garbage
  extremes = [("height", v) for v in (0, 1, 65535, 65536, 2 ** 32 - 1)]
  extremes += [("width", v) for v in (0, 2, 65536, 2 ** 32 - 1)]
  extremes += [("pad", p) for p in ((0, 0, 0, 0), (65535,) * 4, (127, 0, 0, 0), (0, 0, 128, 0),
                                    (13, 15, 4, 4))]
  extremes += [("count", v) for v in (0, 1, 3, 255)]
  for field, value in extremes:
    for crc in (False, True):
      yield f"{field}={value},crc={crc}", _with_sizes(data, crc, **{field: value})
  for value in (0, 1, 3, 255):
    yield f"version={value}", data[:4] + bytes([value]) + data[5:]
  for value in (0, 33, 255):
    yield f"name_length={value}", data[:5] + bytes([value]) + data[6:]
  for k, (start, payload, stop) in enumerate(records):
    for value in (k + 1, 2, 7, 255):
      yield f"relabel{k}={value}", data[:start] + bytes([value]) + data[start + 1:]
    for extra in (1, 1000, 2 ** 32 - 1 - (stop - payload)):
      length = struct.pack("<I", stop - payload + extra)
      yield f"inflate{k}+{extra}", data[:start + 1] + length + data[start + 5:]
    yield f"drop{k}", data[:start] + data[stop:]
    yield f"duplicate{k}", data[:stop] + data[start:]
    if k < len(other_records):  # layer k of the other file, its own CRC and link
      o_start, _, o_stop = other_records[k]
      yield f"swap{k}", data[:start] + other[o_start:o_stop] + data[stop:]
      yield f"splice_from{k}", data[:start] + other[o_start:]
  if len(records) == 2:
    (s0, _, e0), (s1, _, e1) = records
    yield "reorder", data[:s0] + data[s1:e1] + data[s0:e0]


def random_mutations(data, rng, count):
  """`count` random bit flips, byte sets, truncations, insertions, deletions and header flips."""
  for trial in range(count):
    b = bytearray(data)
    kind = trial % 6
    if kind == 0:
      for _ in range(rng.integers(1, 4)):
        b[rng.integers(len(b))] ^= 1 << rng.integers(8)
    elif kind == 1:
      b[rng.integers(len(b))] = rng.integers(256)
    elif kind == 2:
      b = b[:rng.integers(len(b))]
    elif kind == 3:
      at = rng.integers(len(b) + 1)
      b[at:at] = rng.integers(0, 256, rng.integers(1, 16)).astype(np.uint8).tobytes()
    elif kind == 4:
      at = rng.integers(len(b))
      del b[at:at + rng.integers(1, 16)]
    else:  # the header and the first layer record, where sizes live
      b[rng.integers(min(len(b), 120))] ^= 1 << rng.integers(8)
    yield f"random{trial}", bytes(b)


def forged(data, params, rng, count):
  """`count` files whose payload bytes were mutated and then rewritten with valid CRCs, links and
  fingerprints: past the container, so the range coder and the networks meet the damage."""
  header, layers = container.read_container(data, need_layers=())
  fingerprints = {i: scalable.params_fingerprint(params[("base", "additional")[i]])
                  for i in layers}
  for trial in range(count):
    i = trial % len(layers)
    b = bytearray(layers[i])
    if trial % 3 == 0:
      b[rng.integers(len(b))] ^= 1 << rng.integers(8)
    elif trial % 3 == 1:
      b[rng.integers(len(b))] = rng.integers(256)
    else:  # a stream cut short or grown, its length field kept consistent
      z, y = container.unpack_streams(bytes(b), 2)
      y = y[:rng.integers(len(y))] if trial % 2 else y + bytes([rng.integers(256)])
      b = bytearray(container.pack_streams([z, y]))
    yield f"forged{trial}", container.write_container(header, {**layers, i: bytes(b)},
                                                      fingerprints)


def _check(system, params, pictures, label, data, outcomes):
  """Decodes `data` for both layers and describes it; every outcome must be exact or an error."""
  for layer in scalable.LAYERS:
    t = time.perf_counter()
    try:
      got = system.decompress(params, data, layer=layer)
    except IcmhError:
      outcomes["error"] += 1
      got = None
    seconds = time.perf_counter() - t
    assert seconds < DECODE_LIMIT_S, f"{label}: {layer} decode took {seconds:.1f} s"
    if got is not None:
      assert got.shape == pictures[layer].shape and np.array_equal(got, pictures[layer]), \
          f"{label}: the {layer} layer decoded to another picture"
      outcomes["exact"] += 1
  try:
    info = scalable.describe(data)
    assert (info["height"], info["width"]) == pictures["machine"].shape[:2], label
  except IcmhError:
    pass


def _fuzz(corpus, name, random_per_file, forged_per_file, seed):
  system, params, files, pictures = corpus[name]
  rng = np.random.default_rng(seed)
  outcomes, mutations = {"error": 0, "exact": 0}, 0
  for k, data in enumerate(files):
    other = files[(k + 1) % len(files)]
    for label, mutated in (*structured(data, other), *random_mutations(data, rng, random_per_file),
                           *forged(data, params, rng, forged_per_file)):
      if mutated in files:  # unchanged, or a whole other valid file (headers of one size match)
        continue
      _check(system, params, pictures[k], label, mutated, outcomes)
      mutations += 1
  return mutations, outcomes


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", SYSTEMS[:1] + tuple(  # the human layers: 6 s each
    pytest.param(n, marks=pytest.mark.slow) for n in SYSTEMS[1:]))
def test_mutated_files_decode_exactly_or_raise_a_library_error(corpus, name):
  mutations, outcomes = _fuzz(corpus, name, random_per_file=160, forged_per_file=30, seed=11)
  assert mutations >= 500  # >= 2000 over the four systems
  assert outcomes["error"] > outcomes["exact"]
  if corpus[name][0].has_additional:  # a file cut inside the human layer decodes for machines
    assert outcomes["exact"] > 0


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.parametrize("name", SYSTEMS)
def test_twenty_thousand_mutated_files_decode_exactly_or_raise_a_library_error(corpus, name):
  mutations, _ = _fuzz(corpus, name, random_per_file=1500, forged_per_file=300, seed=29)
  assert mutations >= 5000  # >= 20000 over the four systems
