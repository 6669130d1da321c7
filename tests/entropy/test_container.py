"""The .icmh container: round trips, layered truncation, clear errors on bad input, and fuzzing
(container + symbol decode) where every mutated file raises BitstreamError or decodes exactly."""

import hashlib
import struct
import zlib

import numpy as np
import pytest

from icmh_jax.entropy import coder, container, gaussian, tables
from icmh_jax.entropy.container import Header, read_container, write_container
from icmh_jax.errors import BitstreamError

SYSTEM = "fr_icmh"
DIGEST = container.config_digest({"system": SYSTEM, "model": {"N": 128, "M": 320}})
HEADER = Header(SYSTEM, DIGEST, 300, 451, (34, 34, 30, 31))


class _Codec:
  """A miniature two-layer codec: z (factorized) + y (Gaussian) per layer."""

  def __init__(self, prior_params, seed=0):
    rng = np.random.default_rng(seed)
    self.f = tables.factorized_tables(prior_params)
    self.g = tables.gaussian_tables(gaussian.scale_table())
    self.layers = {}
    for layer in (0, 1):
      z_idx = np.broadcast_to(np.arange(12), (4, 6, 12))
      z = np.round(rng.normal(0, 3, z_idx.shape)).astype(np.int32)
      y_idx = rng.integers(0, 64, (16, 24, 64))
      y = np.round(rng.normal(0, 1, y_idx.shape) * gaussian.scale_table()[y_idx]).astype(np.int32)
      y.flat[:3] = [900, -2 ** 15, 2 ** 15]
      self.layers[layer] = (z, z_idx, y, y_idx)

  def encode(self) -> bytes:
    payloads = {}
    for layer, (z, z_idx, y, y_idx) in self.layers.items():
      streams = []
      for t, sym, idx in ((self.f, z, z_idx), (self.g, y, y_idx)):
        enc = coder.SymbolEncoder(t)
        enc.encode(sym, idx)
        streams.append(enc.finish())
      payloads[layer] = container.pack_streams(streams)
    return write_container(HEADER, payloads)

  def decode(self, data, need_layers):
    header, layers = read_container(data, expect_system=SYSTEM, expect_digest=DIGEST,
                                    need_layers=need_layers)
    out = {}
    for layer in need_layers:
      z_data, y_data = container.unpack_streams(layers[layer], 2)
      _, z_idx, _, y_idx = self.layers[layer]
      decoded = []
      for t, stream, idx in ((self.f, z_data, z_idx), (self.g, y_data, y_idx)):
        dec = coder.SymbolDecoder(t, stream)
        decoded.append(dec.decode(idx))
        dec.finish()
      out[layer] = decoded
    return header, out

  def assert_exact(self, header, out):
    assert header == HEADER
    for layer, (z, y) in out.items():
      np.testing.assert_array_equal(z, self.layers[layer][0])
      np.testing.assert_array_equal(y, self.layers[layer][2])


@pytest.fixture(scope="module")
def codec(prior_params):
  return _Codec(prior_params)


def test_round_trip_restores_header_layers_and_symbols(codec):
  data = codec.encode()
  assert data[:4] == b"ICMH"
  codec.assert_exact(*codec.decode(data, (0, 1)))


def test_machine_layer_decodes_from_truncated_file(codec):
  data = codec.encode()
  _, layers = read_container(data, need_layers=(0, 1))
  cut = data[:len(data) - len(layers[1]) - container.LAYER_HEADER_BYTES]  # drop layer 1
  header, out = codec.decode(cut, (0,))
  codec.assert_exact(header, out)
  with pytest.raises(BitstreamError, match=r"human layer missing \(file truncated after layer 0\)"):
    codec.decode(cut, (0, 1))
  # cut inside layer 1's header: the same
  in_header = data[:len(data) - len(layers[1]) - 4]
  codec.assert_exact(*codec.decode(in_header, (0,)))
  with pytest.raises(BitstreamError, match=r"human layer missing \(file truncated after layer 0\)"):
    codec.decode(in_header, (0, 1))
  # cut inside layer 1: still fine for machines, an error for humans
  mid = data[:len(data) - len(layers[1]) // 2]
  codec.assert_exact(*codec.decode(mid, (0,)))
  with pytest.raises(BitstreamError, match="human layer"):
    codec.decode(mid, (0, 1))


def test_strip_layers_gives_a_valid_machine_only_file(codec):
  data = codec.encode()
  machine = container.strip_layers(data, keep=(0,))
  assert len(machine) < len(data)
  codec.assert_exact(*codec.decode(machine, (0,)))
  assert read_container(machine, need_layers=())[1].keys() == {0}
  with pytest.raises(BitstreamError, match=r"file holds layers \[0\]"):
    read_container(machine, need_layers=(0, 1))
  with pytest.raises(BitstreamError, match="1 unexpected bytes"):
    read_container(machine + b"x")


def test_header_fields_round_trip_whatever_sequence_types_were_given():
  h = Header("tcm", bytearray(DIGEST), 65536, 1, [0, 65535, 7, 0])
  back, _ = read_container(write_container(h, {0: b""}))
  assert back == h and back.pad == (0, 65535, 7, 0) and back.config_digest == DIGEST


def test_file_cut_inside_the_machine_layer_is_refused_with_its_name():
  data = write_container(HEADER, {0: b"m" * 50, 1: b"h" * 50})
  human = container.LAYER_HEADER_BYTES + 50
  with pytest.raises(BitstreamError, match="machine layer claims 50 bytes, 20 remain"):
    read_container(data[:-human - 30])
  with pytest.raises(BitstreamError, match=r"machine layer missing \(file truncated before its"):
    read_container(data[:-human - 55])


def test_machine_only_file_reports_missing_human_layer():
  data = write_container(HEADER, {0: b"abc"})
  assert read_container(data)[1] == {0: b"abc"}
  with pytest.raises(BitstreamError, match=r"human layer missing \(file holds layers \[0\]\)"):
    read_container(data, need_layers=(0, 1))


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"ICMX" + d[4:], "not an .icmh file"),
    (lambda d: b"", "not an .icmh file"),
    (lambda d: d[:4] + bytes([7]) + d[5:], "unsupported .icmh format version 7"),
    (lambda d: d[:20], "truncated header"),
    (lambda d: d[:10] + bytes([d[10] ^ 4]) + d[11:], "corrupt header: CRC32 mismatch"),
    (lambda d: d + b"\0", "1 unexpected bytes after the last layer"),
    (lambda d: d[:-1], "human layer claims"),
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "human layer CRC32 mismatch"),
])
def test_damaged_files_raise_bitstream_error_with_a_clear_message(mutate, message):
  data = write_container(HEADER, {0: b"machine" * 5, 1: b"human" * 7})
  with pytest.raises(BitstreamError, match=message):
    read_container(mutate(data), need_layers=(0, 1))


def test_other_system_or_config_is_refused():
  data = write_container(HEADER, {0: b"x"})
  with pytest.raises(BitstreamError, match="written by system 'fr_icmh', not 'pr_icmh'"):
    read_container(data, expect_system="pr_icmh")
  other = container.config_digest({"system": SYSTEM, "model": {"N": 64, "M": 320}})
  with pytest.raises(BitstreamError, match="another 'fr_icmh' config"):
    read_container(data, expect_digest=other)


def _two_files():
  """Two files of one header whose layers differ, and where each one's layer 1 starts."""
  a = write_container(HEADER, {0: b"machine A" * 4, 1: b"human A" * 5})
  b = write_container(HEADER, {0: b"machine B" * 4, 1: b"human B" * 5})
  return a, b, len(a) - container.LAYER_HEADER_BYTES - 35


def test_human_layer_spliced_from_another_file_is_refused_before_decoding():
  a, b, cut = _two_files()
  spliced = a[:cut] + b[cut:]  # A's header and machine layer, B's human layer: valid CRCs
  assert read_container(a[:cut], need_layers=(0,))[1][0] == b"machine A" * 4
  for need in ((0, 1), (0,)):  # a complete layer is always checked, as its CRC is
    with pytest.raises(BitstreamError, match="the human layer does not belong to this file's "
                                             "earlier layers"):
      read_container(spliced, need_layers=need)


def test_header_edited_with_a_recomputed_crc_is_refused():
  data = write_container(HEADER, {0: b"m" * 8})
  end = data.index(b"m" * 8) - container.LAYER_HEADER_BYTES - 4  # the header CRC's offset
  head = bytearray(data[:end])
  head[-17:-13] = struct.pack("<I", HEADER.height - 1)  # height u32, then width, pads, count
  forged = bytes(head) + struct.pack("<I", zlib.crc32(head)) + data[end + 4:]
  assert container._read_header(forged)[0].height == HEADER.height - 1  # the header itself is fine
  with pytest.raises(BitstreamError, match="machine layer does not belong to this file's header"):
    read_container(forged)


def test_relabelled_layer_is_refused():
  data = bytearray(write_container(HEADER, {0: b"m" * 8, 1: b"h" * 8}))
  at = len(data) - 8 - container.LAYER_HEADER_BYTES
  data[at] = 2
  with pytest.raises(BitstreamError, match="layer id 2 where layer 1 belongs"):
    read_container(bytes(data), need_layers=(0, 1))


def test_fingerprints_round_trip_and_a_mismatch_names_both():
  fp = {0: bytes(range(8)), 1: bytes(range(8, 16))}
  data = write_container(HEADER, {0: b"m", 1: b"h"}, fp)
  assert read_container(data, need_layers=(0, 1), expect_fingerprints=fp)[1] == {0: b"m", 1: b"h"}
  other = {0: fp[0], 1: b"\xff" * 8}
  assert read_container(data, need_layers=(0,), expect_fingerprints=other)[1][0] == b"m"
  with pytest.raises(BitstreamError, match="human layer was coded with parameters "
                                           "08090a0b0c0d0e0f, but this model's are ffffffffffffffff"):
    read_container(data, need_layers=(0, 1), expect_fingerprints=other)
  stripped = container.strip_layers(data, keep=(0,))
  assert read_container(stripped, expect_fingerprints={0: fp[0]})[1] == {0: b"m"}


@pytest.mark.parametrize("version", [1, 2])
def test_older_version_file_is_refused_as_written_by_an_older_version(version):
  data = bytearray(write_container(HEADER, {0: b"m"}))
  data[4] = version
  with pytest.raises(BitstreamError,
                     match=f"format version {version} .*older icmh-jax.*encode the image"):
    read_container(bytes(data))


def _forge(height, width, layer_length=None, payload=b"abcd"):
  """A file with a valid header CRC and layer link but the given (possibly absurd) fields."""
  system = SYSTEM.encode()
  head = (b"ICMH" + bytes([container.VERSION, len(system)]) + system + DIGEST
          + struct.pack("<IIHHHHB", height, width, 0, 0, 0, 0, 1))
  head += struct.pack("<I", zlib.crc32(head))
  n = len(payload) if layer_length is None else layer_length
  link = hashlib.sha256(head).digest()[:8]
  return head + struct.pack("<BI8s8sI", 0, n, bytes(8), link, zlib.crc32(payload)) + payload


def test_absurd_sizes_are_refused_before_allocation():
  assert read_container(_forge(10, 10))[0].height == 10
  with pytest.raises(BitstreamError, match="image height 100000; allowed 1..65536"):
    read_container(_forge(100_000, 10))
  with pytest.raises(BitstreamError, match="image width 0"):
    read_container(_forge(10, 0))
  with pytest.raises(BitstreamError, match="machine layer claims 4294967295 bytes, 4 remain"):
    read_container(_forge(10, 10, layer_length=2 ** 32 - 1))


def test_pack_streams_round_trip_and_bounds():
  streams = [b"", b"z" * 5, bytes(range(256))]
  packed = container.pack_streams(streams)
  assert container.unpack_streams(packed, 3) == streams
  with pytest.raises(BitstreamError, match="stream 3 of 4 missing"):
    container.unpack_streams(packed, 4)
  with pytest.raises(BitstreamError, match="bytes after 2 streams"):
    container.unpack_streams(packed, 2)
  with pytest.raises(BitstreamError, match="claims 4294967295 bytes"):
    container.unpack_streams(b"\xff\xff\xff\xff" + b"abc", 1)


def test_invalid_headers_are_rejected_when_writing():
  for bad, message in [(Header("", DIGEST, 1, 1), "system must be"),
                       (Header("x" * 33, DIGEST, 1, 1), "system must be"),
                       (Header("sä", DIGEST, 1, 1), "system must be"),
                       (Header(SYSTEM, b"short", 1, 1), "config_digest must be 16 bytes"),
                       (Header(SYSTEM, DIGEST, 65537, 1), r"height must be an int in \[1, 65536\]"),
                       (Header(SYSTEM, DIGEST, 1, 1, (0, 0, 0)), "pad must be 4 ints")]:
    with pytest.raises(ValueError, match=message):
      write_container(bad, {0: b""})
  for ids in ({256: b""}, {1: b""}, {0: b"", 2: b""}):
    with pytest.raises(ValueError, match="ids 0..n-1"):
      write_container(HEADER, ids)


def test_config_digest_is_canonical_16_bytes():
  import ml_collections
  a = container.config_digest({"b": 1, "a": {"y": 2.0, "x": [1, 2]}})
  b = container.config_digest({"a": {"x": [1, 2], "y": 2.0}, "b": 1})
  assert a == b and len(a) == 16
  assert a != container.config_digest({"b": 1, "a": {"y": 2.5, "x": [1, 2]}})
  cfg = ml_collections.ConfigDict({"b": 1, "a": {"y": 2.0, "x": [1, 2]}})
  assert container.config_digest(cfg) == a


def _mutations(data, rng, count):
  """Random single and multiple bit flips, byte writes, truncations, extensions, insertions,
  deletions and block swaps."""
  for trial in range(count):
    b = bytearray(data)
    kind = trial % 8
    if kind == 0:
      b[rng.integers(len(b))] ^= 1 << rng.integers(8)
    elif kind == 1:
      for _ in range(rng.integers(2, 6)):
        b[rng.integers(len(b))] ^= 1 << rng.integers(8)
    elif kind == 2:
      b[rng.integers(len(b))] = rng.integers(256)
    elif kind == 3:
      b = b[:rng.integers(len(b))]
    elif kind == 4:
      b += rng.integers(0, 256, rng.integers(1, 64)).astype(np.uint8).tobytes()
    elif kind == 5:
      at = rng.integers(len(b))
      b[at:at] = rng.integers(0, 256, rng.integers(1, 16)).astype(np.uint8).tobytes()
    elif kind == 6:
      at = rng.integers(len(b))
      del b[at:at + rng.integers(1, 16)]
    else:  # mutate the header region, where sizes live
      b[rng.integers(min(len(b), 80))] ^= 1 << rng.integers(8)
    yield trial, bytes(b)


def _fuzz(codec, count, seed):
  data = codec.encode()
  rng = np.random.default_rng(seed)
  outcomes = {"error": 0, "exact": 0}
  for trial, mutated in _mutations(data, rng, count):
    need = (0, 1) if trial % 2 else (0,)
    try:
      header, out = codec.decode(mutated, need)
    except BitstreamError:
      outcomes["error"] += 1
      continue
    codec.assert_exact(header, out)
    outcomes["exact"] += 1
  return outcomes


@pytest.mark.timeout(120)
def test_mutated_files_raise_bitstream_error_or_decode_exactly(codec):
  outcomes = _fuzz(codec, 2_000, seed=2024)
  # "exact": e.g. cuts inside layer 1, which still decode for machines
  assert outcomes["error"] >= 1_600 and outcomes["exact"] > 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fifty_thousand_mutated_files_raise_bitstream_error_or_decode_exactly(codec):
  outcomes = _fuzz(codec, 50_000, seed=7)
  assert outcomes["error"] + outcomes["exact"] == 50_000


@pytest.mark.timeout(60)
def test_payload_corruption_behind_a_valid_crc_is_caught_by_the_symbol_decoder(codec):
  _, layers = read_container(codec.encode(), need_layers=(0, 1))
  rng = np.random.default_rng(5)
  for _, payload in _mutations(layers[0], rng, 400):
    rewritten = write_container(HEADER, {0: payload, 1: layers[1]})  # fresh, valid CRCs
    if payload == layers[0]:
      codec.assert_exact(*codec.decode(rewritten, (0, 1)))
    else:
      with pytest.raises(BitstreamError):
        codec.decode(rewritten, (0, 1))
