"""`icmh encode IMAGE... -o OUT --checkpoint DIR`: images (files or folders) -> `.icmh` files.

Each image becomes `OUT/<stem>.icmh` (or OUT itself when it ends in `.icmh` and there is one
image). Images whose outputs would collide (`a.png` and `a.jpg` -> `a.icmh`) are refused, each
naming the others; nothing is overwritten by another input. An image whose padded size exceeds
`--max-pixels` (default 64 Mpixel), or with a side past the container's 65536, is refused from its
header before a pixel is decoded. A failing image (whatever the exception) is reported on stderr
and the batch goes on; the exit status is 1 if any image failed. For tests and demos, `--random-init --system NAME [--config-json JSON]
[--seed S]` builds deterministic random weights instead of loading a checkpoint; decode with the
same flags.
"""

import collections
import json
import pathlib
import sys
import traceback

from icmh_jax.entropy.container import MAX_SIDE
from icmh_jax.errors import ConfigError, IcmhError, ImageError

NAME = "encode"
HELP = "encode images into two-layer .icmh files (machine layer + human layer)"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")
DEFAULT_MAX_PIXELS = 2 ** 26  # 64 Mpixel padded: a 2**26-pixel image already needs tens of GB


def add_max_pixels_argument(p):
  """--max-pixels (shared with decode)."""
  p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                 help=f"refuse images whose padded size exceeds this (default {DEFAULT_MAX_PIXELS})")


def check_padded_size(what, height: int, width: int, multiple: int, max_pixels: int) -> None:
  """Raises `ImageError` when the image padded to `multiple` has more than `max_pixels` pixels or
  a side past the container's `MAX_SIDE`; `what` names the image in the message."""
  if max(height, width) > MAX_SIDE:
    raise ImageError(f"{what} is {width}x{height}; an .icmh file holds sides up to {MAX_SIDE}")
  ph, pw = -(-height // multiple) * multiple, -(-width // multiple) * multiple
  if ph * pw > max_pixels:
    raise ImageError(f"{what} is {width}x{height}, {pw}x{ph} = {ph * pw} pixels padded, more than "
                     f"--max-pixels {max_pixels}; raise --max-pixels to code it")


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
  """Files as given; folders expand to their image files (sorted, not recursive). A file named
  twice is listed once."""
  out = []
  for p in paths:
    if p.is_dir():
      out += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    else:
      out.append(p)
  seen = set()
  return [f for f in out if not (f.resolve() in seen or seen.add(f.resolve()))]


def collisions(targets: dict) -> dict:
  """{input: [other inputs with the same output]} for every input whose output is shared."""
  by_target = collections.defaultdict(list)
  for f, t in targets.items():
    by_target[t.resolve()].append(f)
  return {f: [o for o in group if o != f] for group in by_target.values() if len(group) > 1
          for f in group}


def add_arguments(p):
  p.add_argument("images", nargs="+", type=pathlib.Path, help="image files or folders")
  p.add_argument("-o", "--output", required=True, type=pathlib.Path,
                 help="output folder (created), or a .icmh file for a single image")
  add_max_pixels_argument(p)
  add_model_arguments(p)


def _encode_one(system, params, f, target, max_pixels) -> None:
  from icmh_jax import imageio
  check_padded_size(f"image {f}", *imageio.image_size(f), system.config["pad_multiple"],
                    max_pixels)
  data = system.compress(params, imageio.read_image(f, max_pixels=max_pixels))
  imageio.write_bytes(target, data)
  print(f"{f} -> {target} ({len(data)} bytes)")


def run(args) -> int:
  from tqdm import tqdm
  system, params = load_model(args)
  files = list_images(args.images)
  single = args.output.suffix == ".icmh"
  if single and len(files) != 1:
    raise ConfigError(f"-o {args.output} is a file but {len(files)} images were given")
  if not single:
    args.output.mkdir(parents=True, exist_ok=True)
  targets = {f: args.output if single else args.output / f"{f.stem}.icmh" for f in files}
  clash = collisions(targets)
  failed = 0
  for f in tqdm(files, desc="encode", unit="img", file=sys.stderr):
    try:
      if f in clash:
        raise ConfigError(f"{f} and {', '.join(map(str, clash[f]))} would all be written to "
                          f"{targets[f]}; none of them is encoded (encode them into separate "
                          "folders or rename them)")
      _encode_one(system, params, f, targets[f], args.max_pixels)
    except IcmhError as e:
      failed += 1
      print(f"icmh encode: error: {e}", file=sys.stderr)
    except Exception as e:  # a bug or an exhausted machine: report it, keep the batch going
      failed += 1
      traceback.print_exc(file=sys.stderr)
      print(f"icmh encode: error: {f}: {type(e).__name__}: {e}", file=sys.stderr)
  if failed:
    print(f"icmh encode: {failed} of {len(files)} images failed", file=sys.stderr)
  return 1 if failed else 0
