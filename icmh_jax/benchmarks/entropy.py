"""`icmh bench entropy`: range-coder throughput and real-vs-ideal size on Gaussian symbols.

Symbols are round(N(0, s²)) with s drawn uniformly from the 64 scale-table entries (so every
table is used), coded like y: one stream, tables chosen by scale index.
"""

HELP = "range coder: encode/decode M symbols/s over all 64 Gaussian tables, overhead vs ideal"


def add_arguments(p):
  p.add_argument("--symbols", type=int, default=4_000_000, help="symbols per stream")
  p.add_argument("--escape-fraction", type=float, default=0.0,
                 help="fraction of symbols replaced by uniform values in ±2^15 (escape path)")
  p.add_argument("--seed", type=int, default=0)


def run(args) -> dict:
  import numpy as np

  from icmh_jax.benchmarks import harness
  from icmh_jax.entropy import coder, gaussian, tables
  from icmh_jax.errors import ConfigError

  if args.symbols < 1 or not 0 <= args.escape_fraction <= 1:
    raise ConfigError(f"need --symbols >= 1 and --escape-fraction in [0, 1], got "
                      f"{args.symbols} and {args.escape_fraction}")
  rng = np.random.default_rng(args.seed)
  n = args.symbols
  idx = rng.integers(0, gaussian.NUM_SCALES, n)
  sym = np.round(rng.standard_normal(n) * gaussian.scale_table()[idx]).astype(np.int32)
  wild = rng.random(n) < args.escape_fraction
  sym[wild] = rng.integers(-2 ** 15, 2 ** 15 + 1, int(wild.sum()))
  t = tables.gaussian_tables(gaussian.scale_table())

  def encode():
    enc = coder.SymbolEncoder(t)
    enc.encode(sym, idx)
    return enc.finish()

  data = encode()

  def decode():
    dec = coder.SymbolDecoder(t, data)
    out = dec.decode(idx)
    dec.finish()
    return out

  if not np.array_equal(decode(), sym):
    raise RuntimeError("range coder round trip is not exact")
  enc_t = harness.measure("encode", encode, repeats=args.repeats)
  dec_t = harness.measure("decode", decode, repeats=args.repeats)
  ideal = coder.ideal_bits(sym, idx, t) / 8
  return dict(
      symbols=n,
      escapes=int(wild.sum()),
      encode_msym_per_s=round(n / enc_t.median_s / 1e6, 2),
      decode_msym_per_s=round(n / dec_t.median_s / 1e6, 2),
      encode_s=enc_t.as_dict(),
      decode_s=dec_t.as_dict(),  # includes the re-encode that verifies the stream
      bytes=len(data),
      ideal_bytes=round(ideal, 1),
      overhead_percent=round(100 * (len(data) / ideal - 1), 4),
      bits_per_symbol=round(8 * len(data) / n, 4),
  )
