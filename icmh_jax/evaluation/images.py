"""The images an RD evaluation runs on: a folder (Kodak), the bundled photos, or COCO val.

Each image comes with the edge map m that the machine layer's quality is measured on (PSNR of x̂m
over the edge pixels). Datasets written by `icmh_jax.data.sam_edges` carry the SA-ICM edge map of
their mask source; a plain folder has none, so `edges` names where the map comes from: "canny"
(the named fallback `icmh_jax.sam.edges.canny_edge_map` on the photo itself) or "none" (the edge
metric is then NaN). The source is recorded beside every result, never substituted silently.
"""

import dataclasses
import os
import pathlib
import sys

import numpy as np

from icmh_jax.errors import ConfigError, ImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")
EDGE_SOURCES = ("canny", "none")
DATASETS = ("bundled", "coco_val")


@dataclasses.dataclass
class EvalImage:
  """One test image.

  Attributes:
    name: an id unique within the set (file stem or dataset image_id).
    x: float32 [H, W, 3] in [0, 1].
    edges: bool [H, W] edge map m, or None.
    edge_source: where `edges` came from ("dataset:<name>", "canny", "none").
  """
  name: str
  x: np.ndarray
  edges: np.ndarray | None
  edge_source: str


def center_crop(a, crop):
  """The central crop×crop window of [H, W, ...] (sides shorter than `crop` stay whole)."""
  if not crop:
    return a
  h, w = a.shape[:2]
  top, left = max(h - crop, 0) // 2, max(w - crop, 0) // 2
  return a[top:top + crop, left:left + crop]


def _finish(name, x, edges, edge_source, crop):
  """An EvalImage from x (uint8, or float in [0, 1] at full read depth), cropped with its edges."""
  x = center_crop(np.asarray(x), crop)
  x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
  if edges is None and edge_source == "canny":
    from icmh_jax.sam.edges import canny_edge_map
    edges = canny_edge_map(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8))
  elif edges is not None:
    edges = center_crop(np.asarray(edges, bool), crop)
  return EvalImage(name, x, edges, edge_source)


def from_folder(folder, *, edges="canny", crop=None, limit=None):
  """Every image file in `folder` (sorted by name), read with `icmh_jax.imageio.read_image`.

  Args:
    folder: a directory of images (e.g. the 24 Kodak PNGs).
    edges: "canny" or "none" (see module docstring).
    crop: optional central crop side (tiny runs).
    limit: optional maximum number of images.

  Returns:
    list[EvalImage].

  Raises:
    ImageError: no such folder, no image in it, or an unreadable image.
  """
  from icmh_jax.imageio import read_image
  if edges not in EDGE_SOURCES:
    raise ConfigError(f"edges={edges!r} for a folder; choose one of {', '.join(EDGE_SOURCES)}")
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise ImageError(f"image folder {folder} does not exist (or is not a directory)")
  paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
  if not paths:
    raise ImageError(f"no image ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
  out = []
  for p in paths[:limit]:
    out.append(_finish(p.stem, read_image(p), None, edges, crop))
  return out


def from_records(source, dataset_name, *, crop=None, limit=None):
  """Images of a random-access source of dict(image uint8, edges bool, image_id) records."""
  n = len(source) if limit is None else min(limit, len(source))
  return [_finish(str(r["image_id"]), r["image"], r["edges"], f"dataset:{dataset_name}", crop)
          for r in (source[i] for i in range(n))]


def load_images(data, *, data_dir=None, split="validation", edges="canny", crop=None, limit=None):
  """The evaluation set named on the command line.

  Args:
    data: "bundled" (validation split of the bundled photo set, `icmh_jax.data.bundled`),
      "coco_val" (the `coco_sam_edges` dataset in `data_dir`, split `split`), or a folder path.
    data_dir: where the `coco_sam_edges` dataset was written (coco_val), or where the bundled
      set is written on first use (bundled; default ~/.cache/icmh_jax/data).
    split: the dataset split.
    edges: edge source for a folder ("canny" or "none"); the bundled set's mask source ("canny",
      or "sam" once written with a SAM checkpoint); coco_val brings its own edge maps.
    crop: optional central crop side.
    limit: optional maximum number of images.

  Returns:
    list[EvalImage].
  """
  if data == "bundled":
    from icmh_jax.data import bundled
    mask_source = "sam" if edges == "sam" else "canny"
    # Written once, then cached (the sam set needs a checkpoint when first written).
    source = bundled.load(bundled.prepare(data_dir or "", mask_source), split, mask_source)
    return from_records(source, "bundled", crop=crop, limit=limit)
  if data == "coco_val":
    if not data_dir:
      raise ConfigError("--data coco_val needs the folder the coco_sam_edges dataset was written "
                        "to (data_dir)")
    from icmh_jax.data import sam_edges
    try:
      source = sam_edges.load_split(data_dir, "coco_sam_edges", split)
    except (FileNotFoundError, ValueError) as e:
      raise ConfigError(f"cannot open coco_sam_edges/{split} in {data_dir}: {e}") from e
    return from_records(source, "coco_sam_edges", crop=crop, limit=limit)
  if not os.path.isdir(data):
    raise ConfigError(f"--data {data!r} is neither a folder nor one of {', '.join(DATASETS)}")
  if edges == "canny":
    print(f"evaluate: note: {data} has no SAM edge maps; the machine-layer PSNR uses Canny edges "
          f"of each photo (edges='canny')", file=sys.stderr)
  return from_folder(data, edges=edges, crop=crop, limit=limit)
