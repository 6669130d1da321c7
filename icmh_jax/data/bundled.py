"""The bundled photo set: real photos that ship with scikit-image, scikit-learn and matplotlib.

Tiny runs, tests and the demo train on it with no download. The split is fixed (`TRAIN`,
`VALIDATION`); greyscale photos are replicated to RGB; images are stored as lossless PNG of the
packaged pixels. Edge maps come from a named mask source: `canny` (`icmh_jax.sam.edges`, Canny on
the photo) is the only one possible without a SAM checkpoint, and asking for another one is an
error rather than a silent substitution. The set is written once per data directory as the TFDS
array_record dataset `bundled_<mask_source>` through `icmh_jax.data.sam_edges`.
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
MASK_SOURCES = ("canny",)


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


def edge_map(image: np.ndarray, mask_source: str) -> np.ndarray:
  """bool [H, W] edge map of `image` from the named mask source."""
  if mask_source not in MASK_SOURCES:
    raise ConfigError(f"mask source {mask_source!r} is not available for the bundled photos "
                      f"(allowed: {', '.join(MASK_SOURCES)}); SAM edge maps need a checkpoint: "
                      f"precompute them with `python -m icmh_jax.sam.precompute --source folder`")
  from icmh_jax.sam import edges
  return edges.canny_edge_map(image)


def _png(image: np.ndarray) -> bytes:
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="PNG")
  return buf.getvalue()


def dataset_name(mask_source: str) -> str:
  return f"bundled_{mask_source}"


def examples(split: str, mask_source: str = "canny") -> list[dict]:
  """The records of a split: dict(image_id, image_bytes (PNG), edges bool [H, W])."""
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
  out = []
  for package, name in SPLITS[split]:
    image = load_photo(package, name)
    out.append(dict(image_id=f"{package}/{name}", image_bytes=_png(image),
                    edges=edge_map(image, mask_source)))
  return out


def default_dir() -> str:
  return os.path.join(os.path.expanduser("~"), ".cache", "icmh_jax", "data")


def prepare(data_dir: str = "", mask_source: str = "canny", progress: bool = False) -> str:
  """Writes the bundled set under `data_dir` (default ~/.cache/icmh_jax/data) unless present.

  Returns:
    The data directory (`load(data_dir, split)` reads it).
  """
  from icmh_jax.data import sam_edges
  data_dir = data_dir or default_dir()
  name = dataset_name(mask_source)
  edge_map(np.zeros((8, 8, 3), np.uint8), mask_source)  # reject an unknown source before any work
  for split in SPLITS:
    if not sam_edges.shard_path(data_dir, name, split, 0, 1).exists():
      sam_edges.write_split(data_dir, name, split, examples(split, mask_source), num_shards=1,
                            progress=progress)
  return data_dir


def load(data_dir: str, split: str, mask_source: str = "canny"):
  """The random-access source of a prepared split (records: image uint8, edges bool, image_id)."""
  from icmh_jax.data import sam_edges
  return sam_edges.load_split(data_dir or default_dir(), dataset_name(mask_source), split)
