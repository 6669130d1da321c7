"""`icmh decode FILE.icmh -o OUT.png --layer machine|human --checkpoint DIR`.

The system comes from the file's header; the checkpoint (or `--random-init` with the flags that
encoded it) must hold that system with the same model config (the header's config digest).
`--layer machine` reads layer 0 only, so it also decodes a file cut after layer 0. A header whose
padded image size exceeds `--max-pixels` (default 64 Mpixel, as encode) is refused before the
model is loaded or any network runs.
"""

import pathlib

from icmh_jax.cli import read_icmh
from icmh_jax.cli.encode import add_max_pixels_argument, add_model_arguments, load_model
from icmh_jax.errors import BitstreamError

NAME = "decode"
HELP = "decode a .icmh file to an image (the machine or the human layer)"


def add_arguments(p):
  p.add_argument("file", type=pathlib.Path, help="a .icmh file")
  p.add_argument("-o", "--output", required=True, type=pathlib.Path, help="image to write")
  p.add_argument("--layer", choices=("machine", "human"), default="human",
                 help="which reconstruction to decode (default: human)")
  add_max_pixels_argument(p)
  add_model_arguments(p)


def run(args) -> int:
  from icmh_jax import imageio
  data, info = read_icmh(args.file)
  top, bottom, left, right = info["pad"]
  h, w = info["height"] + top + bottom, info["width"] + left + right
  if h * w > args.max_pixels:
    raise BitstreamError(f"{args.file} claims a {info['width']}x{info['height']} image, {w}x{h} = "
                         f"{h * w} pixels padded, more than --max-pixels {args.max_pixels}; "
                         "raise --max-pixels to decode it")
  system, params = load_model(args, info["system"])
  image = system.decompress(params, data, layer=args.layer)
  imageio.write_image(args.output, image)
  print(f"{args.file} ({args.layer} layer) -> {args.output} ({image.shape[1]}x{image.shape[0]})")
  return 0
