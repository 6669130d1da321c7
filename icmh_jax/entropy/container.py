"""The `.icmh` file: a checked header, then layers (0 = machine, 1 = human), each bound to
what precedes it.

Layout of format version 3 (integers little-endian):
  header: b"ICMH" | version u8 | system length u8 | system ascii | config digest (16 bytes) |
          height u32 | width u32 | pad top, bottom, left, right (u16 each) | layer count u8 |
          CRC32 of all preceding header bytes (u32)
  layer:  id u8 | payload length u32 | params fingerprint (8 bytes) | link (8 bytes) |
          CRC32 of the payload (u32) | payload
Layer ids are 0, 1, ... in order. A layer's `link` is the first 8 bytes of SHA-256 of every byte
before it (the header, then the earlier layers): a layer spliced from another file, or put behind
an edited header, is refused before it is decoded. Its `fingerprint` names the parameters that
coded it (`read_container(expect_fingerprints=...)` checks them), so a file decoded with the wrong
weights is an error, not a wrong picture. A machine decoder needs layer 0 only, so a file cut
after layer 0 still decodes for machines. Every size is checked against its limit and against
the bytes actually present before anything is sliced or allocated. Older versions are refused
with a message: 1 had no links or fingerprints; 2 had the same layout but probability tables
without the 2^-16 floor on every bin (`tables.PROBABILITY_FLOOR`), so its streams would decode
to other symbols.
"""

import dataclasses
import hashlib
import json
import struct
import zlib

from icmh_jax.errors import BitstreamError

MAGIC = b"ICMH"
VERSION = 3
DIGEST_BYTES = 16
FINGERPRINT_BYTES = 8
LINK_BYTES = 8
MAX_SYSTEM_CHARS = 32
MAX_SIDE = 2 ** 16  # largest image height / width a file may claim
LAYER_NAMES = {0: "machine", 1: "human"}
_SIZES = struct.Struct("<IIHHHHB")
_LAYER = struct.Struct(f"<BI{FINGERPRINT_BYTES}s{LINK_BYTES}sI")
LAYER_HEADER_BYTES = _LAYER.size  # bytes of a layer record before its payload
_U32 = struct.Struct("<I")


@dataclasses.dataclass(frozen=True)
class Header:
  """What a decoder must know before the first layer.

  Attributes:
    system: registry name of the system that wrote the file (≤ 32 ascii characters).
    config_digest: `config_digest(config)` of the model config, 16 bytes.
    height, width: size of the original (unpadded) image, 1..65536.
    pad: (top, bottom, left, right) zero padding added before coding, each 0..65535.
    layer_count: the number of layers the header declares (set when read; `write_container`
      writes the count of the layers it is given).
  """
  system: str
  config_digest: bytes
  height: int
  width: int
  pad: tuple = (0, 0, 0, 0)
  layer_count: int | None = dataclasses.field(default=None, compare=False)

  def __post_init__(self):
    # lists and bytearrays compare unequal to what read_container returns: normalise them
    object.__setattr__(self, "pad", tuple(self.pad))
    if isinstance(self.config_digest, bytearray):
      object.__setattr__(self, "config_digest", bytes(self.config_digest))


def config_digest(obj) -> bytes:
  """16 bytes of SHA-256 of the canonical JSON of a config (sorted keys, no spaces).

  Args:
    obj: a JSON-serialisable mapping, or an object with `to_dict()` (ml_collections ConfigDict).
  """
  if hasattr(obj, "to_dict"):
    obj = obj.to_dict()
  text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=repr)
  return hashlib.sha256(text.encode()).digest()[:DIGEST_BYTES]


def _check_header(h: Header) -> tuple:
  if not isinstance(h.system, str) or not h.system or len(h.system) > MAX_SYSTEM_CHARS \
      or not h.system.isascii() or not h.system.isprintable():
    raise ValueError(f"system must be 1..{MAX_SYSTEM_CHARS} printable ascii characters, "
                     f"got {h.system!r}")
  if not isinstance(h.config_digest, (bytes, bytearray)) or len(h.config_digest) != DIGEST_BYTES:
    raise ValueError(f"config_digest must be {DIGEST_BYTES} bytes, got {h.config_digest!r}")
  for name, side in (("height", h.height), ("width", h.width)):
    if not isinstance(side, int) or not 1 <= side <= MAX_SIDE:
      raise ValueError(f"{name} must be an int in [1, {MAX_SIDE}], got {side!r}")
  pad = tuple(h.pad)
  if len(pad) != 4 or not all(isinstance(p, int) and 0 <= p < 2 ** 16 for p in pad):
    raise ValueError(f"pad must be 4 ints (top, bottom, left, right) in [0, 65535], got {h.pad!r}")
  return pad


def write_container(header: Header, layers: dict, fingerprints: dict | None = None) -> bytes:
  """Serialises a header and layers {id: payload}, ids 0, 1, ..., n - 1.

  Args:
    header: the header (its `layer_count` is ignored: the count of `layers` is written).
    layers: {id: payload bytes}.
    fingerprints: {id: 8 bytes} naming the parameters that coded each layer (missing: zeros).

  Raises:
    ValueError: a header field, layer id, size (< 4 GiB) or fingerprint out of range.
  """
  pad = _check_header(header)
  if not layers or sorted(layers) != list(range(len(layers))) or len(layers) > 255:
    raise ValueError(f"layers must map ids 0..n-1 (n <= 255) to bytes, got ids {sorted(layers)}")
  fingerprints = dict(fingerprints or {})
  for i, fp in fingerprints.items():
    if i not in layers or not isinstance(fp, (bytes, bytearray)) or len(fp) != FINGERPRINT_BYTES:
      raise ValueError(f"fingerprint of layer {i} must be {FINGERPRINT_BYTES} bytes of a layer "
                       f"written, got {fp!r}")
  system = header.system.encode("ascii")
  head = (MAGIC + bytes([VERSION, len(system)]) + system + bytes(header.config_digest)
          + _SIZES.pack(header.height, header.width, *pad, len(layers)))
  out = [head, _U32.pack(zlib.crc32(head))]
  chain = hashlib.sha256(b"".join(out))
  for i in sorted(layers):
    payload = bytes(layers[i])
    if len(payload) >= 2 ** 32:
      raise ValueError(f"layer {i} has {len(payload)} bytes; the limit is 4 GiB")
    fp = bytes(fingerprints.get(i, bytes(FINGERPRINT_BYTES)))
    record = _LAYER.pack(i, len(payload), fp, chain.digest()[:LINK_BYTES], zlib.crc32(payload))
    out += [record, payload]
    chain.update(record)
    chain.update(payload)
  return b"".join(out)


def _layer_name(i: int) -> str:
  return f"{LAYER_NAMES[i]} layer" if i in LAYER_NAMES else f"layer {i}"


def _read_header(data: bytes) -> tuple:
  fixed = len(MAGIC) + 2
  if len(data) < fixed or data[:4] != MAGIC:
    raise BitstreamError(f"not an .icmh file: expected magic {MAGIC!r}, got {data[:4]!r}")
  if data[4] != VERSION:
    older = (" (written by an older icmh-jax, whose layout or probability tables differ: "
             "encode the image again)" if data[4] < VERSION else "")
    raise BitstreamError(f"unsupported .icmh format version {data[4]} "
                         f"(this reader knows {VERSION}){older}")
  n = data[5]
  end = fixed + n + DIGEST_BYTES + _SIZES.size
  if not 1 <= n <= MAX_SYSTEM_CHARS:
    raise BitstreamError(f"corrupt header: system name length {n} (allowed 1..{MAX_SYSTEM_CHARS})")
  if len(data) < end + 4:
    raise BitstreamError(f"truncated header: file has {len(data)} bytes, header needs {end + 4}")
  (crc,) = _U32.unpack_from(data, end)
  if zlib.crc32(data[:end]) != crc:
    raise BitstreamError("corrupt header: CRC32 mismatch")
  system = data[fixed:fixed + n]
  if not system.isascii() or not system.decode("ascii").isprintable():
    raise BitstreamError(f"corrupt header: system name {system!r} is not printable ascii")
  digest = data[fixed + n:fixed + n + DIGEST_BYTES]
  h, w, *pad, count = _SIZES.unpack_from(data, fixed + n + DIGEST_BYTES)
  for name, side in (("height", h), ("width", w)):
    if not 1 <= side <= MAX_SIDE:
      raise BitstreamError(f"header claims image {name} {side}; allowed 1..{MAX_SIDE}")
  return Header(system.decode("ascii"), digest, h, w, tuple(pad), count), count, end + 4


def read_container(data: bytes, *, expect_system=None, expect_digest=None, need_layers=(0,),
                   expect_fingerprints=None):
  """Parses and checks an .icmh file.

  Args:
    data: the file's bytes.
    expect_system: if given, the system name the file must carry.
    expect_digest: if given, the config digest the file must carry (the decoding model's).
    need_layers: layer ids that must be present and intact; layers past the last needed one
      may be missing or cut short (a file cut after layer 0 decodes for machines), but each
      layer that is complete is CRC- and link-checked. `()` reads whatever complete layers there
      are.
    expect_fingerprints: if given, {id: 8 bytes}: the fingerprint each needed layer must carry
      (the decoding parameters'); ids not needed are not checked.

  Returns:
    (Header, {id: payload}) with every complete layer read up to the last needed one or the end.

  Raises:
    BitstreamError: wrong magic / version / system / digest / fingerprint, CRC or link mismatch,
      truncation, trailing bytes, out-of-range sizes, or a needed layer missing.
  """
  header, records, truncated = _read_records(data, expect_system, expect_digest, need_layers)
  layers = {i: r.payload for i, r in records.items()}
  for i, want in sorted((expect_fingerprints or {}).items()):
    if i in need_layers and i in records and records[i].fingerprint != bytes(want):
      raise BitstreamError(
          f"{_layer_name(i)} was coded with parameters {records[i].fingerprint.hex()}, but this "
          f"model's are {bytes(want).hex()}: decode it with the checkpoint that wrote it")
  for i in sorted(set(need_layers)):
    if i not in layers:
      last = max(layers, default=-1)
      why = (f"file holds layers {sorted(layers)}" if not truncated
             else f"file truncated after layer {last}" if layers
             else "file truncated before its first layer")
      raise BitstreamError(f"{_layer_name(i)} missing ({why})")
  return header, layers


@dataclasses.dataclass(frozen=True)
class _Record:
  payload: bytes
  fingerprint: bytes


def _read_records(data, expect_system, expect_digest, need_layers):
  """(Header, {id: _Record}, truncated) of the complete, checked layers of `data`."""
  if not isinstance(data, (bytes, bytearray, memoryview)):
    raise BitstreamError(f"expected the bytes of an .icmh file, got {type(data).__name__}")
  data = bytes(data)
  header, count, pos = _read_header(data)
  if expect_system is not None and header.system != expect_system:
    raise BitstreamError(f"file was written by system '{header.system}', not '{expect_system}'")
  if expect_digest is not None and header.config_digest != bytes(expect_digest):
    raise BitstreamError(f"file was written with another '{header.system}' config (digest "
                         f"{header.config_digest.hex()}, this model {bytes(expect_digest).hex()})")
  need = sorted(set(need_layers))
  records, truncated = {}, False
  for k in range(count):
    if pos + _LAYER.size > len(data):
      truncated = True  # cut at a layer boundary or inside a layer header
      break
    i, length, fingerprint, link, crc = _LAYER.unpack_from(data, pos)
    if i != k:
      raise BitstreamError(f"corrupt file: layer id {i} where layer {k} belongs")
    start = pos + _LAYER.size
    if length > len(data) - start:
      if need and i <= need[-1]:
        raise BitstreamError(f"truncated file: {_layer_name(i)} claims {length} bytes, "
                             f"{len(data) - start} remain")
      truncated = True  # a layer nobody asked for was cut short
      break
    if hashlib.sha256(data[:pos]).digest()[:LINK_BYTES] != link:
      before = "this file's header" if i == 0 else "this file's earlier layers"
      raise BitstreamError(f"corrupt file: the {_layer_name(i)} does not belong to {before} "
                           f"(spliced from another file, or the header was edited)")
    payload = data[start:start + length]
    if zlib.crc32(payload) != crc:
      raise BitstreamError(f"corrupt file: {_layer_name(i)} CRC32 mismatch")
    records[i], pos = _Record(payload, fingerprint), start + length
  if not truncated and pos != len(data):
    raise BitstreamError(f"corrupt file: {len(data) - pos} unexpected bytes after the last layer")
  return header, records, truncated


def strip_layers(data: bytes, keep=(0,)) -> bytes:
  """A valid file holding only the `keep` layers of `data` (e.g. the machine layer alone), their
  fingerprints kept and their links made anew.

  Args:
    keep: the first layer ids, 0..k-1 (ids stay consecutive).

  Raises:
    ValueError: `keep` is not 0..k-1.
    BitstreamError: `data` is not a valid file or lacks a kept layer.
  """
  need = tuple(sorted(set(keep)))
  if need != tuple(range(len(need))):
    raise ValueError(f"keep must be the first layer ids 0..k-1, got {keep!r}")
  header, records, _ = _read_records(data, None, None, need)
  read_container(data, need_layers=need)  # the missing-layer messages
  return write_container(header, {i: records[i].payload for i in need},
                         {i: records[i].fingerprint for i in need})


def pack_streams(streams) -> bytes:
  """Concatenates range-coded streams (e.g. z then y), each prefixed by its u32 length."""
  out = []
  for s in streams:
    s = bytes(s)
    if len(s) >= 2 ** 32:
      raise ValueError(f"stream of {len(s)} bytes is too long (limit 4 GiB)")
    out += [_U32.pack(len(s)), s]
  return b"".join(out)


def unpack_streams(data: bytes, count: int) -> list:
  """Splits a `pack_streams` payload into exactly `count` streams.

  Raises:
    BitstreamError: a length runs past the end, or bytes are left over.
  """
  data, pos, streams = bytes(data), 0, []
  for k in range(count):
    if pos + 4 > len(data):
      raise BitstreamError(f"layer payload truncated: stream {k} of {count} missing")
    (n,) = _U32.unpack_from(data, pos)
    if n > len(data) - pos - 4:
      raise BitstreamError(f"layer payload corrupt: stream {k} claims {n} bytes, "
                           f"{len(data) - pos - 4} remain")
    streams.append(data[pos + 4:pos + 4 + n])
    pos += 4 + n
  if pos != len(data):
    raise BitstreamError(f"layer payload corrupt: {len(data) - pos} bytes after {count} streams")
  return streams
