"""`icmh info FILE.icmh [--json]`: system, image size, bytes and bpp per layer of a `.icmh` file.

bpp = 8 * bytes / (H * W) of the original (unpadded) image. A file cut after layer 0 lists the
human layer as missing.
"""

import json
import pathlib

from icmh_jax.cli import read_icmh

NAME = "info"
HELP = "describe a .icmh file: system, image size, bytes and bpp per layer"


def add_arguments(p):
  p.add_argument("file", type=pathlib.Path, help="a .icmh file")
  p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
  _, info = read_icmh(args.file)
  if args.json:
    print(json.dumps(info))
    return 0
  print(f"{args.file}: system {info['system']}, image {info['width']}x{info['height']}, "
        f"{info['file_bytes']} bytes, {info['file_bpp']:.4f} bpp")
  for layer, d in info["layers"].items():
    if d is None and info["has_human_layer"] is False:
      print(f"  {layer:<8} none ({info['system']} writes the machine layer only)")
    elif d is None:
      print(f"  {layer:<8} missing (file cut after the machine layer)")
    else:
      print(f"  {layer:<8} {d['bytes']:>10} bytes  {d['bpp']:.4f} bpp")
  return 0
