"""Range coding: exact round trips (tails and escapes included), size against the ideal,
corrupt and truncated streams, and bit-identical decoding in another process."""

import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from icmh_jax.entropy import coder, gaussian, tables
from icmh_jax.errors import BitstreamError

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _gaussian_symbols(n, seed, escape_fraction=0.0):
  """n symbols over all 64 scale indexes: round(N(0, s²)) plus, optionally, uniform wild values."""
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, 64, n)
  sym = np.round(rng.standard_normal(n) * gaussian.scale_table()[idx]).astype(np.int32)
  if escape_fraction:
    wild = rng.random(n) < escape_fraction
    sym[wild] = rng.integers(-2 ** 15, 2 ** 15 + 1, wild.sum())
    sym[:6] = [2 ** 15, -2 ** 15, 2 ** 15 - 1, -2 ** 15 + 1, 1565, -1565]
  return sym, idx


def _factorized_symbols(t, n, seed):
  """n symbols drawn from each channel's own table (escape bin → a value just past the edge)."""
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, t.num_tables, n)
  u = rng.random(n)
  cdf = np.cumsum(t.normalized(), axis=1)
  bins = np.empty(n, np.int64)
  for k in range(t.num_tables):
    sel = idx == k
    bins[sel] = np.minimum(np.searchsorted(cdf[k], u[sel], side="right"), t.lengths[k] - 1)
  lo = t.offsets[idx]
  sym = lo + bins
  esc = bins == t.lengths[idx] - 1
  sym[esc] = np.where(rng.random(esc.sum()) < 0.5, lo[esc] - 1 - rng.integers(0, 40, esc.sum()),
                      lo[esc] + bins[esc] + rng.integers(0, 40, esc.sum()))
  return sym.astype(np.int32), idx


def _round_trip(t, chunks):
  enc = coder.SymbolEncoder(t)
  for sym, idx in chunks:
    enc.encode(sym, idx)
  data = enc.finish()
  dec = coder.SymbolDecoder(t, data)
  out = [dec.decode(idx) for _, idx in chunks]
  dec.finish()
  return data, out


def test_round_trip_is_exact_for_a_million_symbols_with_tails_and_escapes(prior_params):
  g = tables.gaussian_tables(gaussian.scale_table())
  sym, idx = _gaussian_symbols(1_000_000, 0, escape_fraction=2e-3)
  assert set(np.unique(idx)) == set(range(64))
  # several encode calls of different shapes, as per-slice coding does
  chunks = [(sym[:5 * 64 * 64].reshape(5, 64, 64), idx[:5 * 64 * 64].reshape(5, 64, 64)),
            (sym[20480:], idx[20480:])]
  _, out = _round_trip(g, chunks)
  for (s, _), o in zip(chunks, out):
    assert o.dtype == np.int32 and o.shape == s.shape
    np.testing.assert_array_equal(o, s)

  f = tables.factorized_tables(prior_params)
  zsym, zidx = _factorized_symbols(f, 200_000, 1)
  zsym[:4] = [2 ** 15, -2 ** 15, 0, 7]
  assert np.sum((zsym < f.offsets[zidx]) | (zsym > f.offsets[zidx] + f.lengths[zidx] - 2)) > 10
  _, (zout,) = _round_trip(f, [(zsym, zidx)])
  np.testing.assert_array_equal(zout, zsym)


def test_round_trip_is_exact_for_every_scale_index_and_support_edge():
  g = tables.gaussian_tables(gaussian.scale_table())
  lo, hi = g.offsets, g.offsets + g.lengths - 2
  values = np.stack([lo - 2, lo - 1, lo, lo + 1, np.zeros(64, np.int64), hi - 1, hi, hi + 1,
                     hi + 2, hi + 1000], 1)
  idx = np.broadcast_to(np.arange(64)[:, None], values.shape)
  _, (out,) = _round_trip(g, [(values.astype(np.int32), idx)])
  np.testing.assert_array_equal(out, values)


def test_real_size_is_within_half_a_percent_of_ideal(prior_params):
  g = tables.gaussian_tables(gaussian.scale_table())
  for escape_fraction in (0.0, 1e-3):
    sym, idx = _gaussian_symbols(1_000_000, 2, escape_fraction)
    data, _ = _round_trip(g, [(sym, idx)])
    ideal = coder.ideal_bits(sym, idx, g) / 8
    assert len(data) <= 1.005 * ideal + 64, (len(data), ideal)
    assert len(data) >= 0.98 * ideal  # the ideal is a real lower bound up to the escape floor
  f = tables.factorized_tables(prior_params)
  zsym, zidx = _factorized_symbols(f, 1_000_000, 3)
  data, _ = _round_trip(f, [(zsym, zidx)])
  ideal = coder.ideal_bits(zsym, zidx, f) / 8
  assert ideal * 0.999 <= len(data) <= 1.005 * ideal + 64, (len(data), ideal)


def test_a_badly_predicted_symbol_costs_at_most_16_bits():
  """The narrowest Gaussian (s = 0.11) gives ±1 a mass of 2.7e-6 (18.5 bits); the 2^-16 floor
  on every bin caps it at 16 bits, as compressai's 16-bit tables do."""
  g = tables.gaussian_tables(gaussian.scale_table())
  s = float(gaussian.scale_table()[0])
  tail = lambda x: math.erfc(x / s / math.sqrt(2)) / 2  # P(X > x), X ~ N(0, s²)
  assert -math.log2(tail(0.5) - tail(1.5)) > 18
  n = 20_000
  sym = np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.int32)
  data, (out,) = _round_trip(g, [(sym, np.zeros(n, np.int64))])
  np.testing.assert_array_equal(out, sym)
  assert len(data) <= n * 16.01 / 8 + 64, len(data)


def test_ideal_bits_is_minus_log2_of_table_probabilities_plus_bypass():
  t = tables.CdfTables(np.array([[0.5, 0.25, 0.25, 0.0], [0.125, 0.375, 0.25, 0.25]]),
                       np.array([0, -1]), np.array([3, 4]))
  # table 0: symbols 0, 1, escape; table 1: symbols -1, 0, 1, escape
  sym = np.array([0, 1, 5, -1, 0, 1, -4])
  idx = np.array([0, 0, 0, 1, 1, 1, 1])
  # 5 in table 0: escape (2 bits), d = 5-1-1 = 3 → nbits 2 → head log2(36) + 1 low bit.
  # -4 in table 1: escape (2 bits), d = -1-1+4 = 2 → nbits 2 → head + 1 bit.
  expected = 1 + 2 + (2 + math.log2(36) + 1) + 3 + 1.415037499278844 + 2 + (2 + math.log2(36) + 1)
  np.testing.assert_allclose(coder.ideal_bits(sym, idx, t), expected, rtol=1e-12)
  _, (out,) = _round_trip(t, [(sym, idx)])
  np.testing.assert_array_equal(out, sym)


def test_symbols_beyond_range_or_bad_indexes_raise_value_error():
  g = tables.gaussian_tables(gaussian.scale_table())
  enc = coder.SymbolEncoder(g)
  with pytest.raises(ValueError, match="32769 is outside the codable range"):
    enc.encode(np.array([0, 2 ** 15 + 1]), np.array([3, 3]))
  with pytest.raises(ValueError, match=r"indexes must be in \[0, 64\), got 0..64"):
    enc.encode(np.array([0, 1]), np.array([0, 64]))
  with pytest.raises(ValueError, match="differ in shape"):
    enc.encode(np.zeros(3, np.int32), np.zeros(4, np.int32))
  with pytest.raises(ValueError, match="must be integers"):
    enc.encode(np.zeros(3), np.zeros(3, np.int32))


@pytest.mark.timeout(60)
def test_every_corrupt_truncated_or_extended_stream_raises_bitstream_error(prior_params):
  f = tables.factorized_tables(prior_params)
  sym, idx = _factorized_symbols(f, 3000, 5)
  data, _ = _round_trip(f, [(sym, idx)])
  rng = np.random.default_rng(9)
  for trial in range(400):
    b = bytearray(data)
    kind = trial % 4
    if kind == 0:
      b[rng.integers(len(b))] ^= 1 << rng.integers(8)
    elif kind == 1:
      b = b[:rng.integers(len(b))]
    elif kind == 2:
      b += bytes(rng.integers(0, 256, rng.integers(1, 9)).astype(np.uint8))
    else:
      b[rng.integers(len(b))] = rng.integers(256)
    if bytes(b) == data:
      continue
    with pytest.raises(BitstreamError):
      dec = coder.SymbolDecoder(f, bytes(b))
      dec.decode(idx)
      dec.finish()


def test_decoding_with_other_indexes_is_detected(prior_params):
  f = tables.factorized_tables(prior_params)
  sym, idx = _factorized_symbols(f, 2000, 6)
  data, _ = _round_trip(f, [(sym, idx)])
  dec = coder.SymbolDecoder(f, data)
  dec.decode(np.roll(idx, 1))
  with pytest.raises(BitstreamError, match="CRC32"):
    dec.finish()


_CHILD = r"""
import sys, numpy as np, jax, jax.numpy as jnp
from icmh_jax.entropy import coder, gaussian, tables, factorized
d = np.load(sys.argv[1])
params = {k[6:]: d[k] for k in d.files if k.startswith("prior/")}
g, f = tables.gaussian_tables(gaussian.scale_table()), tables.factorized_tables(params)
dec = coder.SymbolDecoder(f, d["z_data"].tobytes()); z = dec.decode(d["z_idx"]); dec.finish()
dec = coder.SymbolDecoder(g, d["y_data"].tobytes()); y = dec.decode(d["y_idx"]); dec.finish()
model = factorized.FactorizedPrior(params["quantiles"].shape[0])
z_lik = model.apply({"params": params}, jnp.asarray(d["z_tilde"]))
y_lik = gaussian.gaussian_likelihood(jnp.asarray(d["y_tilde"]), jnp.asarray(d["scales"]))
np.savez(sys.argv[2], z=z, y=y, g=g.pmfs, f=f.pmfs, z_lik=np.asarray(z_lik),
         y_lik=np.asarray(y_lik),
         idx=np.asarray(jax.jit(gaussian.build_indexes)(jnp.asarray(d["scales"]))))
"""


def _other_simd_paths() -> str:
  """NPY_DISABLE_CPU_FEATURES value that switches numpy off this CPU's best dispatched paths."""
  try:
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
  except ImportError:
    return ""
  return " ".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f))


@pytest.mark.timeout(120)
def test_decoding_is_bit_identical_in_a_process_with_other_thread_counts(tmp_path, prior_params):
  """The child runs with one thread everywhere, three XLA host devices and numpy's SIMD dispatch
  narrowed (as on an older CPU), then rebuilds the tables and decodes."""
  import jax.numpy as jnp
  from icmh_jax.entropy import factorized
  g = tables.gaussian_tables(gaussian.scale_table())
  f = tables.factorized_tables(prior_params)
  y, y_idx = _gaussian_symbols(200_000, 11, 1e-3)
  z, z_idx = _factorized_symbols(f, 20_000, 12)
  (y_data, _), (z_data, _) = _round_trip(g, [(y, y_idx)]), _round_trip(f, [(z, z_idx)])
  rng = np.random.default_rng(13)
  z_tilde = rng.normal(0, 5, (2, 16, 16, 12)).astype(np.float32)
  y_tilde = rng.normal(0, 5, (2, 32, 32, 64)).astype(np.float32)
  scales = np.exp(rng.uniform(-3, 6, y_tilde.shape)).astype(np.float32)
  model = factorized.FactorizedPrior(12)
  mine = dict(z=z, y=y, g=g.pmfs, f=f.pmfs,
              z_lik=np.asarray(model.apply({"params": prior_params}, jnp.asarray(z_tilde))),
              y_lik=np.asarray(gaussian.gaussian_likelihood(jnp.asarray(y_tilde),
                                                            jnp.asarray(scales))),
              idx=gaussian.build_indexes(scales))
  inputs = tmp_path / "in.npz"
  np.savez(inputs, y_data=np.frombuffer(y_data, np.uint8), z_data=np.frombuffer(z_data, np.uint8),
           y_idx=y_idx, z_idx=z_idx, z_tilde=z_tilde, y_tilde=y_tilde, scales=scales,
           **{"prior/" + k: v for k, v in prior_params.items()})
  env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", JAX_PLATFORMS="cpu",
             NPY_DISABLE_CPU_FEATURES=_other_simd_paths(),
             XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1 "
                       "--xla_force_host_platform_device_count=3")
  subprocess.run([sys.executable, "-c", _CHILD, str(inputs), str(tmp_path / "out.npz")], env=env,
                 cwd=ROOT, check=True, timeout=110)
  theirs = np.load(tmp_path / "out.npz")
  for key, value in mine.items():
    np.testing.assert_array_equal(theirs[key], value, err_msg=key)


def test_golden_symbols_round_trip_no_larger_than_the_reference_strings(tcm_golden,
                                                                         golden_eb_params):
  """LIC-TCM's own symbols and indexes (z per channel, y slice by slice, 9,877 y escapes) code
  exactly, in at most the reference's byte counts (compressai rANS, 16-bit tables)."""
  npz, meta = tcm_golden
  z, y, y_idx = npz["cmp/z_symbols"][0], npz["cmp/y_symbols"][0], npz["cmp/y_indexes"][0]
  z_idx = np.broadcast_to(np.arange(192)[:, None, None], z.shape)
  f = tables.factorized_tables(golden_eb_params)
  g = tables.gaussian_tables(gaussian.scale_table())
  z_data, (z_out,) = _round_trip(f, [(z, z_idx)])
  slices = [(y[64 * i:64 * (i + 1)], y_idx[64 * i:64 * (i + 1)]) for i in range(5)]
  y_data, y_out = _round_trip(g, slices)
  np.testing.assert_array_equal(z_out, z)
  np.testing.assert_array_equal(np.concatenate(y_out), y)
  assert len(z_data) <= meta["compress"]["z_string_bytes"][0]
  assert len(y_data) <= meta["compress"]["y_string_bytes"][0]
