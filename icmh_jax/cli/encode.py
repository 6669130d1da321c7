"""`icmh encode IMAGE... -o OUT --checkpoint DIR`: images (files or folders) -> `.icmh` files.

Each image becomes `OUT/<stem>.icmh` (or OUT itself when it ends in `.icmh` and there is one
image). An unreadable image is reported on stderr and the batch goes on; the exit status is 1 if
any image failed. For tests and demos, `--random-init --system NAME [--config-json JSON]
[--seed S]` builds deterministic random weights instead of loading a checkpoint; decode with the
same flags.
"""

import json
import pathlib
import sys

from icmh_jax.errors import ConfigError, IcmhError

NAME = "encode"
HELP = "encode images into two-layer .icmh files (machine layer + human layer)"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")


def add_model_arguments(p):
  """--checkpoint, or --random-init with --system / --config-json / --seed (shared with decode)."""
  p.add_argument("--checkpoint", type=pathlib.Path, help="params dir or training workdir")
  p.add_argument("--system", help="registry name (checked against the checkpoint when given)")
  p.add_argument("--random-init", action="store_true", help="random weights (tests and demos)")
  p.add_argument("--config-json", default="{}", help="model config for --random-init (JSON)")
  p.add_argument("--seed", type=int, default=0, help="seed of --random-init")


def load_model(args, name=None):
  """(System, params) from the model arguments; `name` (e.g. from a file header) must match."""
  from icmh_jax.models import registry
  if (args.checkpoint is None) == (not args.random_init):
    raise ConfigError("give exactly one of --checkpoint DIR and --random-init")
  want = args.system or name
  if name and args.system and name != args.system:
    raise ConfigError(f"--system {args.system} does not match the file's system {name}")
  try:
    model_config = json.loads(args.config_json)
  except json.JSONDecodeError as e:
    raise ConfigError(f"--config-json is not valid JSON: {e}") from e
  if args.random_init:
    return registry.load_system(None, name=want, model_config=model_config, seed=args.seed)
  return registry.load_system(args.checkpoint, name=want)


def list_images(paths) -> list[pathlib.Path]:
  """Files as given; folders expand to their image files (sorted, not recursive)."""
  out = []
  for p in paths:
    if p.is_dir():
      out += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    else:
      out.append(p)
  return out


def add_arguments(p):
  p.add_argument("images", nargs="+", type=pathlib.Path, help="image files or folders")
  p.add_argument("-o", "--output", required=True, type=pathlib.Path,
                 help="output folder (created), or a .icmh file for a single image")
  add_model_arguments(p)


def run(args) -> int:
  from tqdm import tqdm
  from icmh_jax import imageio
  system, params = load_model(args)
  files = list_images(args.images)
  single = args.output.suffix == ".icmh"
  if single and len(files) != 1:
    raise ConfigError(f"-o {args.output} is a file but {len(files)} images were given")
  if not single:
    args.output.mkdir(parents=True, exist_ok=True)
  failed = 0
  for f in tqdm(files, desc="encode", unit="img", file=sys.stderr):
    try:
      data = system.compress(params, imageio.read_image(f))
      target = args.output if single else args.output / f"{f.stem}.icmh"
      imageio.write_bytes(target, data)
      print(f"{f} -> {target} ({len(data)} bytes)")
    except IcmhError as e:
      failed += 1
      print(f"icmh encode: error: {e}", file=sys.stderr)
  return 1 if failed else 0
