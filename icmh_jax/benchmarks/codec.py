"""`icmh bench codec`: LIC-TCM compress / decompress seconds on a real photo (compile apart).

The image is skimage's astronaut resized to --size; weights are a random init (--seed) or a
params directory (--checkpoint, e.g. from `icmh convert tcm`). The random init codes like a model
the coder can serve, not an escape-path stress test: `y_escapes` counts the latents outside their
tables (0 at N=64 and 128, 512x768), and with both sides' tables floored at 2^-16 the byte counts
match the reference's on the same weights. Encode = g_a, h_a, hyper-synthesis,
the per-slice Ch-ARM and range coding; decode = the same up to g_s and the clamp. For reference
(DESIGN.md, PyTorch LIC-TCM on this 2-core CPU, 512x768): 2.57 / 2.86 s (N=64), 5.45 / 6.64 s
(N=128). With --torch-reference DIR (a LIC_TCM checkout) the PyTorch model codes the same image
in the same run: torch_* keys and speedup_encode / speedup_decode = torch seconds / JAX seconds.
`range_coding_share_decode`: the fraction of one decode spent in the range decoder
(`entropy/coder.py`), from a cProfile'd decode after the timed ones.
"""

HELP = "LIC-TCM encode / decode seconds at --size (median of --repeats, first call apart)"


def add_arguments(p):
  p.add_argument("--model", default="tcm", choices=("tcm",), help="codec to time")
  p.add_argument("--N", type=int, default=64, help="transform width N (64 or 128)")
  p.add_argument("--M", type=int, default=320, help="latent channels")
  p.add_argument("--slices", type=int, default=5, help="Ch-ARM slices")
  p.add_argument("--size", default="512x768", help="HxW of the test image")
  p.add_argument("--checkpoint", default=None, help="params directory (else random init)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--torch-reference", metavar="DIR", default=None,
                 help="also time the PyTorch LIC-TCM checkout at DIR on the same image")
  p.add_argument("--torch-threads", type=int, default=None,
                 help="torch CPU threads for --torch-reference (default: every usable core)")


def _parse_size(text: str) -> tuple[int, int]:
  from icmh_jax.errors import ConfigError
  try:
    h, w = (int(v) for v in text.lower().split("x"))
  except ValueError:
    h = w = 0
  if h < 64 or w < 64 or h > 8192 or w > 8192:
    raise ConfigError(f"--size must be HxW with sides in [64, 8192], got {text!r}")
  return h, w


def coder_share(fn) -> float:
  """Fraction of one call of `fn` spent in `entropy/coder.py` (time entered from outside it),
  measured with cProfile."""
  import cProfile
  import os
  import pstats
  import time
  prof = cProfile.Profile()
  t = time.perf_counter()
  prof.runcall(fn)
  wall = time.perf_counter() - t
  in_coder = lambda key: key[0].endswith(os.path.join("entropy", "coder.py"))
  inside = sum(ct for key, (_, _, _, _, callers) in pstats.Stats(prof).stats.items()
               if in_coder(key) for caller, (_, _, _, ct) in callers.items()
               if not in_coder(caller))
  return inside / wall


def y_escapes(system, params, image) -> int:
  """How many of the image's y symbols fall outside their Gaussian tables (coded as escapes)."""
  import numpy as np

  from icmh_jax.entropy import gaussian, tables
  from icmh_jax.models import coding
  padded, _ = coding.pad_image(image[None], system.config["pad_multiple"])
  y = coding.call_method(system.base, params, "analysis", padded)
  _, _, sym = coding.compress_y(system.base, params, y, return_symbols=True)
  half_widths = tables.gaussian_pmf_centers(gaussian.scale_table())[sym["y_indexes"]]
  return int(np.sum(np.abs(sym["y_symbols"]) > half_widths))


def run(args) -> dict:
  h, w = _parse_size(args.size)
  if args.torch_reference:  # fail before the long JAX timing when torch or the checkout is missing
    from icmh_jax.benchmarks import torch_reference
    torch_reference.load_reference(args.torch_reference)
  import jax
  import numpy as np
  from PIL import Image
  from skimage import data

  from icmh_jax.benchmarks import harness
  from icmh_jax.models import registry

  system = registry.get_system("tcm", dict(N_machine=args.N, M=args.M, num_slices_m=args.slices,
                                           slice_width=args.M // args.slices))
  if args.checkpoint:
    from icmh_jax.params_io import load_params
    params, _ = load_params(args.checkpoint)
    params = params.get("base", params)
  else:  # PyTorch's default init (System.init), as the reference starts
    params = system.init(jax.random.key(args.seed), (1, 128, 128, 3))["base"]
  u8 = np.asarray(Image.fromarray(data.astronaut()).resize((w, h), Image.BICUBIC))
  image = u8.astype(np.float32) / np.float32(255)
  state = {}

  def encode():
    state["data"] = system.compress({"base": params}, image)

  def decode():
    state["x_hat"] = system.decompress({"base": params}, state["data"])

  enc = harness.measure("encode", encode, repeats=args.repeats)
  dec = harness.measure("decode", decode, repeats=args.repeats)
  n_bytes = len(state["data"])
  mse = float(np.mean((state["x_hat"] - image) ** 2))
  results = dict(model=args.model, N=args.N, M=args.M, slices=args.slices, size=f"{h}x{w}",
                 weights=args.checkpoint or f"random init, PyTorch default (seed {args.seed})",
                 encode_s=round(enc.median_s, 3), decode_s=round(dec.median_s, 3),
                 encode_first_s=round(enc.first_call_s or 0.0, 2),
                 decode_first_s=round(dec.first_call_s or 0.0, 2),
                 bytes=n_bytes, bpp=round(8 * n_bytes / (h * w), 4),
                 psnr=round(float(10 * np.log10(1 / max(mse, 1e-12))), 2),
                 y_escapes=y_escapes(system, params, image),
                 range_coding_share_decode=round(coder_share(decode), 3), **harness.peak_memory())
  if args.torch_reference:
    from icmh_jax.convert import tcm as convert_tcm
    ref = torch_reference.isolated(
        "time_codec", directory=args.torch_reference, N=args.N, M=args.M, height=h, width=w,
        repeats=args.repeats, threads=args.torch_threads, image=image, num_slices=args.slices,
        seed=args.seed, state_dict=convert_tcm.to_reference(jax.device_get(params)))
    results.update({f"torch_{k}": v for k, v in ref.items()})
    results["speedup_encode"] = torch_reference.speedup(ref["encode_s"], enc.median_s)
    results["speedup_decode"] = torch_reference.speedup(ref["decode_s"], dec.median_s)
  return results
