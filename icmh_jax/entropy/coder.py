"""Exact range coding of integer symbols with constriction (queue semantics: decode in the order
of encoding), vectorised over symbols.

Per `encode(symbols, indexes)` call the stream holds, in this order:
1. the bins, grouped by table index in increasing index order, each group in flattened C order,
   coded with that table's `Categorical(perfect=False)` model (escape = last bin);
2. for the escaped symbols (flattened C order), a head symbol side·18 + nbits under Uniform(36),
   where d = distance past the support edge (0-based) and nbits = bit_length(d) ≤ 17;
3. for escapes with nbits ≥ 2, the low nbits−1 bits of d under Uniform(2^(nbits−1)).
The decoder replays the same steps from the indexes alone. `finish` appends a CRC32 of all
symbols and indexes (two 16-bit uniform symbols): a corrupt stream often decodes to other valid
symbols, and a range decoder cannot see where its data ends (constriction reads past the end as
zeros), so `SymbolDecoder.finish` checks the CRC and re-encodes what was decoded, accepting the
stream only if that reproduces it byte for byte.
"""

import math
import zlib

import constriction
import numpy as np

from icmh_jax.entropy.tables import MAX_SYMBOL, CdfTables
from icmh_jax.errors import BitstreamError

_MAX_NBITS = 17  # d ≤ 2·2^15 < 2^17 for any table inside ±2^15
_HEAD_SIZE = 2 * (_MAX_NBITS + 1)
_MODEL_CACHE: dict[bytes, list] = {}
_CRC_HALF = 2 ** 16


def _crc_update(crc: int, symbols: np.ndarray, indexes: np.ndarray) -> int:
  crc = zlib.crc32(np.ascontiguousarray(symbols, "<i4").tobytes(), crc)
  return zlib.crc32(np.ascontiguousarray(indexes, "<i4").tobytes(), crc)


def _models(tables: CdfTables) -> list:
  """One constriction Categorical per table (built lazily, cached by the tables' digest)."""
  models = _MODEL_CACHE.get(tables.digest)
  if models is None:
    if len(_MODEL_CACHE) >= 16:
      _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
    models = _MODEL_CACHE[tables.digest] = [None] * tables.num_tables
  return models


def _model(tables: CdfTables, k: int):
  models = _models(tables)
  if models[k] is None:
    pmf = tables.pmfs[k, :tables.lengths[k]]
    models[k] = constriction.stream.model.Categorical(pmf, perfect=False)
  return models[k]


def _check_indexes(tables: CdfTables, indexes) -> np.ndarray:
  indexes = np.asarray(indexes)
  if indexes.dtype.kind not in "iu":
    raise ValueError(f"indexes must be integers, got dtype {indexes.dtype}")
  flat = indexes.reshape(-1).astype(np.int64)
  if flat.size and (flat.min() < 0 or flat.max() >= tables.num_tables):
    raise ValueError(f"indexes must be in [0, {tables.num_tables}), got "
                     f"{flat.min()}..{flat.max()}")
  return flat


def _groups(flat_indexes: np.ndarray):
  """Yields (table index, positions) in increasing table order, positions in C order."""
  # a stable sort of 16-bit keys is a radix sort in numpy: ~10x faster than on int64
  keys = flat_indexes.astype(np.uint16) if flat_indexes.size and flat_indexes.max() < 2 ** 16 \
      else flat_indexes
  order = np.argsort(keys, kind="stable")
  sorted_idx = flat_indexes[order]
  starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]]) if order.size else []
  ends = list(starts[1:]) + [order.size]
  for a, b in zip(starts, ends):
    yield int(sorted_idx[a]), order[a:b]


def _bit_length(d: np.ndarray) -> np.ndarray:
  nbits = np.zeros(d.shape, np.int64)
  while True:
    more = (d >> nbits) > 0
    if not more.any():
      return nbits
    nbits += more


class SymbolEncoder:
  """Range-encodes integer symbols, each under the table its index names.

  Args:
    tables: the CdfTables shared with the decoder.
  """

  def __init__(self, tables: CdfTables):
    self.tables = tables
    self._encoder = constriction.stream.queue.RangeEncoder()
    self._crc = 0
    self._data = None

  def encode(self, symbols, indexes) -> None:
    """Appends symbols (any shape, flattened in C order) to the stream.

    Args:
      symbols: integer array; every value must lie in [−2^15, 2^15].
      indexes: integer array of the same shape, table index per symbol.

    Raises:
      ValueError: mismatched shapes, non-integer input, index or symbol out of range.
    """
    symbols = np.asarray(symbols)
    if symbols.dtype.kind not in "iu":
      raise ValueError(f"symbols must be integers, got dtype {symbols.dtype}")
    if symbols.shape != np.shape(indexes):
      raise ValueError(f"symbols {symbols.shape} and indexes {np.shape(indexes)} differ in shape")
    idx = _check_indexes(self.tables, indexes)
    v = symbols.reshape(-1).astype(np.int64)
    if v.size and (v.min() < -MAX_SYMBOL or v.max() > MAX_SYMBOL):
      bad = v[np.argmax((v < -MAX_SYMBOL) | (v > MAX_SYMBOL))]
      raise ValueError(f"symbol {bad} is outside the codable range [-{MAX_SYMBOL}, {MAX_SYMBOL}]")
    if self._data is not None:
      raise ValueError("SymbolEncoder.encode called after finish()")
    self._crc = _crc_update(self._crc, v, idx)
    lo = self.tables.offsets[idx]
    escape_bin = self.tables.lengths[idx] - 1
    hi = lo + escape_bin - 1
    inside = (v >= lo) & (v <= hi)
    bins = np.where(inside, v - lo, escape_bin).astype(np.int32)
    for k, pos in _groups(idx):
      self._encoder.encode(bins[pos], _model(self.tables, k))
    escaped = np.flatnonzero(~inside)
    if escaped.size:
      above = v[escaped] > hi[escaped]
      d = np.where(above, v[escaped] - hi[escaped] - 1, lo[escaped] - 1 - v[escaped])
      nbits = _bit_length(d)
      head = (above * (_MAX_NBITS + 1) + nbits).astype(np.int32)
      self._encoder.encode(head, constriction.stream.model.Uniform(_HEAD_SIZE))
      long = nbits >= 2
      if long.any():
        sizes = (1 << (nbits[long] - 1)).astype(np.int32)
        low = (d[long] - sizes).astype(np.int32)
        self._encoder.encode(low, constriction.stream.model.Uniform(), sizes)

  def finish(self) -> bytes:
    """Seals the stream with the CRC of its content and returns it (little-endian u32 words)."""
    if self._data is None:
      crc = np.array([self._crc >> 16, self._crc & 0xFFFF], np.int32)
      self._encoder.encode(crc, constriction.stream.model.Uniform(_CRC_HALF))
      self._data = self._encoder.get_compressed().astype("<u4").tobytes()
    return self._data


class SymbolDecoder:
  """Decodes what a SymbolEncoder wrote, with the same tables and the same index sequence.

  Args:
    tables: the CdfTables the encoder used.
    data: bytes from `SymbolEncoder.finish`.

  Raises:
    BitstreamError: the data is not a whole number of 32-bit words.
  """

  def __init__(self, tables: CdfTables, data: bytes):
    self.tables = tables
    data = bytes(data)
    self._data = data
    self._decoded = []
    self._crc = 0
    self._finished = False
    if len(data) % 4:
      raise BitstreamError(f"range-coded stream has {len(data)} bytes, not a multiple of 4")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    try:
      self._decoder = constriction.stream.queue.RangeDecoder(words)
    except Exception as e:  # constriction rejects some word sequences outright
      raise BitstreamError(f"corrupt range-coded stream: {e}") from e

  def _decode(self, *args) -> np.ndarray:
    try:
      return np.asarray(self._decoder.decode(*args), np.int64)
    except Exception as e:  # constriction's errors on corrupt or exhausted data
      raise BitstreamError(f"corrupt or truncated range-coded stream: {e}") from e

  def decode(self, indexes) -> np.ndarray:
    """Decodes one symbol per index (same order of calls as the encoder's `encode`).

    Args:
      indexes: integer array (any shape), the table index of each symbol.

    Returns:
      int32 symbols, the shape of `indexes`.

    Raises:
      BitstreamError: the stream is corrupt or ends early.
    """
    shape = np.shape(indexes)
    idx = _check_indexes(self.tables, indexes)
    bins = np.empty(idx.size, np.int64)
    for k, pos in _groups(idx):
      bins[pos] = self._decode(_model(self.tables, k), int(pos.size))
    lo = self.tables.offsets[idx]
    escape_bin = self.tables.lengths[idx] - 1
    v = lo + bins
    escaped = np.flatnonzero(bins == escape_bin)
    if escaped.size:
      head = self._decode(constriction.stream.model.Uniform(_HEAD_SIZE), int(escaped.size))
      above, nbits = head // (_MAX_NBITS + 1), head % (_MAX_NBITS + 1)
      d = np.where(nbits >= 1, 1 << np.maximum(nbits - 1, 0), 0)
      long = nbits >= 2
      if long.any():
        sizes = (1 << (nbits[long] - 1)).astype(np.int32)
        d[long] += self._decode(constriction.stream.model.Uniform(), sizes)
      hi = lo[escaped] + escape_bin[escaped] - 1
      v[escaped] = np.where(above == 1, hi + 1 + d, lo[escaped] - 1 - d)
      if np.any(np.abs(v[escaped]) > MAX_SYMBOL):
        raise BitstreamError(f"corrupt range-coded stream: escaped symbol beyond ±{MAX_SYMBOL}")
    self._crc = _crc_update(self._crc, v, idx)
    symbols = v.astype(np.int32).reshape(shape)
    self._decoded.append((symbols, idx))
    return symbols

  def finish(self) -> None:
    """Checks that the stream held exactly the symbols decoded so far, nothing more or less.

    Raises:
      BitstreamError: the stream is truncated, corrupt, or has data past the last symbol.
    """
    if self._finished:
      return
    self._finished = True
    hi, lo = self._decode(constriction.stream.model.Uniform(_CRC_HALF), 2)
    if (int(hi) << 16 | int(lo)) != self._crc:
      raise BitstreamError("corrupt range-coded stream: CRC32 of the decoded symbols mismatch")
    encoder = SymbolEncoder(self.tables)
    for symbols, idx in self._decoded:
      encoder.encode(symbols.reshape(-1), idx)
    if encoder.finish() != self._data:
      raise BitstreamError("corrupt range-coded stream: it does not re-encode to the same bytes "
                           f"({len(self._data)} bytes; truncated, altered or with trailing data)")


def ideal_bits(symbols, indexes, tables: CdfTables) -> float:
  """−Σ log2 p of the symbols under the (normalised float64) tables, escapes and their bypass
  bits included: the size an ideal coder with these tables would reach.

  Args:
    symbols: integer array; indexes: integer array of the same shape.
    tables: CdfTables.

  Returns:
    bits, float.
  """
  idx = _check_indexes(tables, indexes)
  v = np.asarray(symbols).reshape(-1).astype(np.int64)
  if v.shape != idx.shape:
    raise ValueError(f"symbols {np.shape(symbols)} and indexes {np.shape(indexes)} differ in shape")
  p = tables.normalized()
  lo = tables.offsets[idx]
  escape_bin = tables.lengths[idx] - 1
  hi = lo + escape_bin - 1
  inside = (v >= lo) & (v <= hi)
  bins = np.where(inside, v - lo, escape_bin)
  bits = -np.log2(p[idx, bins]).sum()
  d = np.where(v > hi, v - hi - 1, lo - 1 - v)[~inside]
  nbits = _bit_length(d)
  return float(bits + d.size * math.log2(_HEAD_SIZE) + np.maximum(nbits - 1, 0).sum())
