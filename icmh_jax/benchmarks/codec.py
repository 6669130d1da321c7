"""`icmh bench codec`: LIC-TCM compress / decompress seconds on a real photo (compile apart).

The image is skimage's astronaut resized to --size; weights are a random init (--seed) or a
params directory (--checkpoint, e.g. from `icmh convert tcm`). Encode = g_a, h_a, hyper-synthesis,
the per-slice Ch-ARM and range coding; decode = the same up to g_s and the clamp. For reference
(DESIGN.md, PyTorch LIC-TCM on this 2-core CPU, 512x768): 2.57 / 2.86 s (N=64), 5.45 / 6.64 s
(N=128).
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


def _parse_size(text: str) -> tuple[int, int]:
  from icmh_jax.errors import ConfigError
  try:
    h, w = (int(v) for v in text.lower().split("x"))
  except ValueError:
    h = w = 0
  if h < 64 or w < 64 or h > 8192 or w > 8192:
    raise ConfigError(f"--size must be HxW with sides in [64, 8192], got {text!r}")
  return h, w


def run(args) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from PIL import Image
  from skimage import data

  from icmh_jax.benchmarks import harness
  from icmh_jax.models import coding
  from icmh_jax.models.tcm import TCM

  h, w = _parse_size(args.size)
  model = TCM(N=args.N, M=args.M, num_slices=args.slices)
  if args.checkpoint:
    from icmh_jax.train.checkpoint import load_params
    params, _ = load_params(args.checkpoint)
    params = params.get("base", params)
  else:
    params = jax.jit(model.init)(jax.random.PRNGKey(args.seed), jnp.zeros((1, 128, 128, 3)))
    params = params["params"]
  u8 = np.asarray(Image.fromarray(data.astronaut()).resize((w, h), Image.BICUBIC))
  image = u8.astype(np.float32) / np.float32(255)
  state = {}

  def encode():
    state["streams"], state["info"] = coding.compress(model, params, image)

  def decode():
    state["x_hat"] = coding.decompress(model, params, state["streams"], state["info"])

  enc = harness.measure("encode", encode, repeats=args.repeats)
  dec = harness.measure("decode", decode, repeats=args.repeats)
  n_bytes = sum(len(s) for s in state["streams"])
  mse = float(np.mean((state["x_hat"] - image) ** 2))
  return dict(model=args.model, N=args.N, M=args.M, slices=args.slices, size=f"{h}x{w}",
              weights=args.checkpoint or f"random init (seed {args.seed})",
              encode_s=round(enc.median_s, 3), decode_s=round(dec.median_s, 3),
              encode_first_s=round(enc.first_call_s or 0.0, 2),
              decode_first_s=round(dec.first_call_s or 0.0, 2),
              bytes=n_bytes, bpp=round(8 * n_bytes / (h * w), 4),
              psnr=round(float(10 * np.log10(1 / max(mse, 1e-12))), 2))
