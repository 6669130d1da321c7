"""The bundled photo set: real photos that ship with scikit-image, scikit-learn and matplotlib.

Tiny runs, tests and the demo train on it with no download. The split is fixed (`TRAIN`,
`VALIDATION`); greyscale photos are replicated to RGB; images are stored as lossless PNG of the
packaged pixels. Edge maps come from a named mask source: `canny` (`icmh_jax.sam.edges`, Canny on
the photo, no checkpoint) or `sam` (SA-ICM's rule: SAM's automatic masks -> label map -> Canny,
needs a SAM checkpoint when the set is first written). Asking for `sam` without one is an error
rather than a silent substitution. The set is written once per data directory and mask source as
the TFDS array_record dataset `bundled_<mask_source>` through `icmh_jax.data.sam_edges`.
"""

import io
import os

import numpy as np

from icmh_jax.errors import ConfigError

# (package, name): skimage.data.<name>(), sklearn load_sample_image(name), matplotlib sample data.
TRAIN = (("skimage", "astronaut"), ("skimage", "coffee"), ("skimage", "rocket"),
         ("skimage", "hubble_deep_field"), ("skimage", "immunohistochemistry"),
         ("skimage", "retina"), ("skimage", "camera"), ("skimage", "coins"), ("skimage", "moon"),
         ("sklearn", "china.jpg"))
VALIDATION = (("skimage", "chelsea"), ("sklearn", "flower.jpg"), ("matplotlib", "grace_hopper.jpg"))
SPLITS = {"train": TRAIN, "validation": VALIDATION}
MASK_SOURCES = ("canny", "sam")


def load_photo(package: str, name: str) -> np.ndarray:
  """One bundled photo as uint8 [H, W, 3] RGB."""
  if package == "skimage":
    import skimage.data
    img = getattr(skimage.data, name)()
  elif package == "sklearn":
    from sklearn.datasets import load_sample_image
    img = load_sample_image(name)
  elif package == "matplotlib":
    from matplotlib import cbook
    from PIL import Image
    with cbook.get_sample_data(name) as f, Image.open(f) as im:
      img = np.asarray(im.convert("RGB"))
  else:
    raise ValueError(f"unknown photo package {package!r}; known: skimage, sklearn, matplotlib")
  img = np.asarray(img, np.uint8)
  return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img[..., :3]


def edge_fn(mask_source: str, sam_checkpoint: str = "", sam_model: str | None = None,
            sam_amg: dict | None = None):
  """The function uint8 [H, W, 3] -> bool [H, W] edge map of the named mask source.

  `sam` loads `sam_checkpoint` (official `.pth` or `.npz` of its state_dict; the size from its
  file name unless `sam_model` says) and runs the automatic mask generator with SAM's default
  settings updated by `sam_amg` (its keyword arguments), keeping the 255 largest masks of a
  photo with more.
  """
  from icmh_jax.sam import edges
  if mask_source not in MASK_SOURCES:
    raise ConfigError(f"mask source {mask_source!r} is not available for the bundled photos "
                      f"(allowed: {', '.join(MASK_SOURCES)})")
  if mask_source == "canny":
    return edges.canny_edge_map
  if not sam_checkpoint:
    raise ConfigError("SAM edge maps of the bundled photos need a SAM checkpoint (demo: "
                      "--sam-checkpoint; training: --config.data.sam_checkpoint); use the mask "
                      "source canny to run without SAM")
  from icmh_jax.sam import precompute
  from icmh_jax.sam.predictor import SamPredictor
  params, config = precompute.load_sam(sam_checkpoint, sam_model)
  return precompute.sam_edge_fn(SamPredictor(params, config), dict(sam_amg or {}),
                                too_many="largest")


def _png(image: np.ndarray) -> bytes:
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="PNG")
  return buf.getvalue()


def dataset_name(mask_source: str) -> str:
  return f"bundled_{mask_source}"


def examples(split: str, edges_of=None) -> list[dict]:
  """The records of a split: dict(image_id, image_bytes (PNG), edges bool [H, W]).

  `edges_of`: the edge function (`edge_fn(...)`); default Canny.
  """
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
  edges_of = edges_of or edge_fn("canny")
  out = []
  for package, name in SPLITS[split]:
    image = load_photo(package, name)
    out.append(dict(image_id=f"{package}/{name}", image_bytes=_png(image), edges=edges_of(image)))
  return out


def default_dir() -> str:
  return os.path.join(os.path.expanduser("~"), ".cache", "icmh_jax", "data")


def prepare(data_dir: str = "", mask_source: str = "canny", progress: bool = False,
            sam_checkpoint: str = "", sam_model: str | None = None,
            sam_amg: dict | None = None) -> str:
  """Writes the bundled set under `data_dir` (default ~/.cache/icmh_jax/data) unless present.

  Args:
    data_dir: the TFDS data directory.
    mask_source: "canny" or "sam" (see `edge_fn`).
    progress: show a progress bar per split.
    sam_checkpoint, sam_model, sam_amg: the SAM model of `mask_source="sam"` and generator
      settings (see `edge_fn`); only used while a split is missing.

  Returns:
    The data directory (`load(data_dir, split, mask_source)` reads it).
  """
  from icmh_jax.data import sam_edges
  data_dir = data_dir or default_dir()
  name = dataset_name(mask_source)
  todo = [s for s in SPLITS if not sam_edges.shard_path(data_dir, name, s, 0, 1).exists()]
  edges_of = edge_fn(mask_source, sam_checkpoint, sam_model, sam_amg) if todo else None
  for split in todo:
    sam_edges.write_split(data_dir, name, split, examples(split, edges_of), num_shards=1,
                          progress=progress)
  return data_dir


def load(data_dir: str, split: str, mask_source: str = "canny"):
  """The random-access source of a prepared split (records: image uint8, edges bool, image_id)."""
  from icmh_jax.data import sam_edges
  return sam_edges.load_split(data_dir or default_dir(), dataset_name(mask_source), split)
