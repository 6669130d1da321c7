"""Offline precompute of SA-ICM edge maps into the `coco_sam_edges` dataset (icmh_jax.data.sam_edges).

  python -m icmh_jax.sam.precompute --source coco --split train --images /data/coco \
      --sam-checkpoint sam_vit_h_4b8939.pth --out /data/tfds [--mask-source sam|canny]

`--source coco` reads a local COCO folder (`<images>/train2017`, `<images>/val2017`, or the
images directly in `<images>`); `--source folder` takes every image under `<images>`. Files are
sorted, so the example order, the shards and the image ids (COCO: the file stem; folder: the
relative path without suffix) are reproducible. Edge maps come from `--mask-source sam` (SAM's
automatic mask generator -> label map -> Canny, needs `--sam-checkpoint`) or `canny` (Canny on the
photo, no checkpoint). Resumable: complete shards are skipped. Parallel: process p of n
(`jax.process_index()` / `process_count()`, or the flags) writes shards p::n, and inside a process
one thread per local device writes every D-th of those shards with a predictor on its device.
"""

import argparse
import concurrent.futures
import math
import pathlib
import re
import sys
from typing import Callable, Sequence

import numpy as np

from icmh_jax.errors import ConfigError, IcmhError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
COCO_FOLDERS = {"train": "train2017", "validation": "val2017", "val": "val2017"}


def list_images(source: str, images_dir, split: str) -> tuple[pathlib.Path, list[pathlib.Path]]:
  """(root, sorted image paths) of a COCO split folder or any image folder."""
  root = pathlib.Path(images_dir)
  if source == "coco" and (root / COCO_FOLDERS.get(split, split)).is_dir():
    root = root / COCO_FOLDERS.get(split, split)
  if not root.is_dir():
    raise ConfigError(f"image folder not found: {root}")
  glob = root.glob("*") if source == "coco" else root.rglob("*")
  paths = sorted(p for p in glob if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
  if not paths:
    raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
  return root, paths


class ImageEdges(Sequence):
  """Lazy examples for `sam_edges.write_split`: item i reads image i and computes its edges."""

  def __init__(self, root: pathlib.Path, paths: list[pathlib.Path],
               edge_fn: Callable[[np.ndarray], np.ndarray]):
    self.root, self.paths, self.edge_fn = root, paths, edge_fn

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, i: int) -> dict:
    from icmh_jax.data.sam_edges import decode_image
    path = self.paths[i]
    data = path.read_bytes()
    image_id = path.relative_to(self.root).with_suffix("").as_posix()
    try:
      edges = self.edge_fn(decode_image(data))
    except ValueError as e:
      raise IcmhError(f"{path}: {e}") from e
    return dict(image_id=image_id, image_bytes=data, edges=edges)


def sam_edge_fn(predictor, amg_kwargs: dict, too_many: str = "error"):
  """image -> SA-ICM edge map with SAM's generator; too_many="largest" keeps the 255 largest
  masks when an image has more than a uint8 label map holds ("error" raises)."""
  from icmh_jax.sam import amg, edges
  generator = amg.AutomaticMaskGenerator(predictor, **amg_kwargs)

  def edge_fn(image):
    records = generator.generate(image)
    if too_many == "largest" and len(records) > edges.MAX_MASKS:
      areas = np.array([r["area"] for r in records])
      keep = np.sort(np.argsort(-areas, kind="stable")[:edges.MAX_MASKS])
      records = [records[i] for i in keep]
    return edges.edge_map(records, image.shape[:2])
  return edge_fn


def load_sam(checkpoint, model: str | None):
  """(params, config) from an official `.pth` (needs torch) or an `.npz` of the same state_dict."""
  from icmh_jax.convert import sam as convert_sam
  from icmh_jax.convert.pth import load_state_dict
  from icmh_jax.sam.model import get_config, param_shapes
  path = pathlib.Path(checkpoint)
  if not path.is_file():
    raise ConfigError(f"SAM checkpoint not found: {path}")
  if model is None:
    found = re.search(r"vit_[bhl]", path.name)
    if not found:
      raise ConfigError(f"cannot tell the SAM size from {path.name!r}; pass --sam-model "
                        "vit_b|vit_l|vit_h")
    model = found.group(0)
  config = get_config(model)
  state_dict = load_state_dict(path)  # CheckpointError (an IcmhError) when unreadable
  return convert_sam.from_torch(state_dict, config, param_shapes(config)), config


def assign_shards(num_shards: int, process_index: int, process_count: int,
                  num_workers: int) -> list[list[int]]:
  """Shards of each local worker: process p takes shards p::n, its worker d every D-th of those."""
  mine = list(range(process_index, num_shards, process_count))
  return [mine[d::num_workers] for d in range(num_workers)]


def _edge_fns(args) -> list[Callable]:
  """One edge function per local worker (per device for SAM)."""
  from icmh_jax.sam import edges
  if args.mask_source == "canny":
    return [edges.canny_edge_map] * max(1, args.workers or 1)
  import jax
  from icmh_jax.sam.predictor import SamPredictor
  params, config = load_sam(args.sam_checkpoint, args.sam_model)
  devices = jax.local_devices()[:args.workers or None]
  amg_kwargs = dict(points_per_side=args.amg_points_per_side,
                    points_per_batch=args.amg_points_per_batch,
                    pred_iou_thresh=args.amg_pred_iou_thresh,
                    stability_score_thresh=args.amg_stability_score_thresh,
                    box_nms_thresh=args.amg_box_nms_thresh, crop_n_layers=args.amg_crop_n_layers,
                    min_mask_region_area=args.amg_min_mask_region_area)
  return [sam_edge_fn(SamPredictor(jax.device_put(params, d), config,
                                   points_per_batch=args.amg_points_per_batch),
                      amg_kwargs, args.too_many_masks) for d in devices]


def precompute(args) -> pathlib.Path:
  """Writes this process's shards of the split; returns the dataset folder."""
  from icmh_jax.data import sam_edges
  if args.mask_source == "sam" and not args.sam_checkpoint:
    raise ConfigError("--mask-source sam needs --sam-checkpoint (use --mask-source canny to run "
                      "without SAM; there is no silent fallback)")
  root, paths = list_images(args.source, args.images, args.split)
  num_shards = args.num_shards or max(1, math.ceil(len(paths) / 1000))
  if not 1 <= num_shards <= len(paths):
    raise ConfigError(f"--num-shards {num_shards} must be in 1..{len(paths)} (the image count)")
  p, n = args.process_index, args.process_count
  if p is None or n is None:
    import jax
    p, n = jax.process_index(), jax.process_count()
  if not 0 <= p < n:
    raise ConfigError(f"process index {p} must be in 0..{n - 1}")
  fns = _edge_fns(args)
  work = assign_shards(num_shards, p, n, len(fns))

  def write(worker: int):
    examples = ImageEdges(root, paths, fns[worker])
    sam_edges.write_split(args.out, args.name, args.split, examples, num_shards=num_shards,
                          progress=not args.no_progress, shard_indices=work[worker])

  with concurrent.futures.ThreadPoolExecutor(len(fns)) as pool:
    for f in [pool.submit(write, d) for d in range(len(fns)) if work[d]]:
      f.result()
  return sam_edges.dataset_dir(args.out, args.name)


def build_parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(prog="python -m icmh_jax.sam.precompute",
                               description=__doc__.splitlines()[0])
  ap.add_argument("--source", choices=("coco", "folder"), required=True)
  ap.add_argument("--split", required=True, help="split name written, e.g. train, validation")
  ap.add_argument("--images", required=True, help="COCO root / split folder, or image folder")
  ap.add_argument("--out", required=True, help="TFDS data_dir to write into")
  ap.add_argument("--name", default="coco_sam_edges", help="dataset name")
  ap.add_argument("--mask-source", choices=("sam", "canny"), default="sam")
  ap.add_argument("--sam-checkpoint", help="official SAM .pth, or .npz of its state_dict")
  ap.add_argument("--sam-model", choices=("vit_b", "vit_l", "vit_h"),
                  help="SAM size (default: from the checkpoint's file name)")
  ap.add_argument("--num-shards", type=int, help="default: one per 1000 images")
  ap.add_argument("--workers", type=int, help="local workers (default: all local devices)")
  # Spelt as train.py's absl flag, so one multi-host recipe serves every entry point.
  ap.add_argument("--jax_distributed", action="store_true",
                  help="call jax.distributed.initialize() first (multi-host runs)")
  ap.add_argument("--process-index", type=int, help="default jax.process_index()")
  ap.add_argument("--process-count", type=int, help="default jax.process_count()")
  ap.add_argument("--too-many-masks", choices=("error", "largest"), default="error",
                  help="images with > 255 masks: fail, or keep the 255 largest")
  ap.add_argument("--no-progress", action="store_true")
  for flag, typ, default in (("points-per-side", int, 32), ("points-per-batch", int, 64),
                             ("pred-iou-thresh", float, 0.88),
                             ("stability-score-thresh", float, 0.95),
                             ("box-nms-thresh", float, 0.7), ("crop-n-layers", int, 0),
                             ("min-mask-region-area", int, 0)):
    ap.add_argument(f"--amg-{flag}", type=typ, default=default, help=f"default {default}")
  return ap


def main(argv=None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.mask_source == "sam" and not args.sam_checkpoint:
    parser.error("--mask-source sam needs --sam-checkpoint (use --mask-source canny to run "
                 "without SAM; there is no silent fallback)")
  if (args.process_index is None) != (args.process_count is None):
    parser.error("give both --process-index and --process-count, or neither")
  if args.jax_distributed:
    import jax
    jax.distributed.initialize()
  try:
    folder = precompute(args)
  except IcmhError as e:
    print(f"precompute: error: {e}", file=sys.stderr)
    return 1
  print(folder)
  return 0


if __name__ == "__main__":
  sys.exit(main())
