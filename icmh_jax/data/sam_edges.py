"""The `coco_sam_edges` dataset: photos with their SA-ICM edge maps, as TFDS array_record shards.

Records hold the ORIGINAL encoded image bytes (JPEG/PNG, never re-encoded), the edge map as packed
bits (`np.packbits(edges, axis=-1)`, row-major, plus height and width) and an `image_id` string.
The shards and TFDS's `dataset_info.json` / `features.json` are written here without TensorFlow
(and without a TFDS builder, whose whole-split temp directory cannot resume), in the layout
`<out_dir>/<name>/1.0.0/<name>-<split>.array_record-0000k-of-0000n` that
`tfds.builder_from_directory(...).as_data_source()` and `tfds.data_source(name, data_dir=out_dir)`
read. Examples go to shards in contiguous, equal-as-possible runs, so a shard's content depends
only on the example order; each shard is written to a hidden temporary name and renamed when
complete, a restart skips complete shards, and the metadata appears once every shard exists.
"""

import io
import json
import os
import pathlib
import sys
import threading
from typing import Any, Iterable, Sequence

import numpy as np

VERSION = "1.0.0"
_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
_META_LOCK = threading.Lock()  # precompute writes shards of one split from several threads


def features():
  """The TFDS feature spec: image (encoded bytes), edges {packed, height, width}, image_id."""
  import tensorflow_datasets as tfds
  return tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=(None, None, 3)),
      "edges": tfds.features.FeaturesDict({
          "packed": tfds.features.Tensor(shape=(None,), dtype=np.uint8),
          "height": tfds.features.Scalar(dtype=np.int32),
          "width": tfds.features.Scalar(dtype=np.int32),
      }),
      "image_id": tfds.features.Text(),
  })


def pack_edges(edges: np.ndarray) -> dict[str, Any]:
  """bool [H, W] -> dict(packed uint8 [H * ceil(W / 8)], height, width)."""
  edges = np.asarray(edges)
  if edges.ndim != 2 or edges.dtype != bool:
    raise ValueError(f"edges must be a bool [H, W] array, got {edges.dtype} {edges.shape}")
  return dict(packed=np.packbits(edges, axis=-1).reshape(-1), height=edges.shape[0],
              width=edges.shape[1])


def unpack_edges(packed: np.ndarray, height: int, width: int) -> np.ndarray:
  """Inverse of `pack_edges`: -> bool [height, width]."""
  rows = np.asarray(packed, np.uint8).reshape(int(height), -1)
  return np.unpackbits(rows, axis=-1)[:, :int(width)].astype(bool)


def shard_bounds(num_examples: int, num_shards: int) -> list[tuple[int, int]]:
  """Contiguous [start, end) example ranges, shard k gets examples k*n//s .. (k+1)*n//s."""
  if num_shards < 1 or num_examples < num_shards:
    raise ValueError(f"need 1 <= num_shards <= num_examples, got num_shards={num_shards} for "
                     f"{num_examples} examples")
  return [(k * num_examples // num_shards, (k + 1) * num_examples // num_shards)
          for k in range(num_shards)]


def dataset_dir(out_dir, name: str) -> pathlib.Path:
  """Where a dataset's shards and metadata live: <out_dir>/<name>/<VERSION>."""
  return pathlib.Path(out_dir) / name / VERSION


def shard_path(out_dir, name: str, split: str, k: int, num_shards: int) -> pathlib.Path:
  return dataset_dir(out_dir, name) / f"{name}-{split}.array_record-{k:05d}-of-{num_shards:05d}"


def write_split(out_dir, name: str, split: str, examples: Iterable[dict], num_shards: int = 1,
                progress: bool = True, *, num_examples: int | None = None,
                shard_indices: Sequence[int] | None = None) -> list[pathlib.Path]:
  """Writes (or resumes) one split; returns the paths of the shards this call owns.

  Args:
    out_dir: data directory (`tfds.data_source(name, data_dir=out_dir)` reads it).
    name: dataset name, e.g. `coco_sam_edges`.
    split: split name, e.g. `train`.
    examples: dicts with `image_id` (str), `image_bytes` (encoded JPEG/PNG, stored as is) and
      `edges` (bool [H, W], the image's size). A `Sequence` is indexed only for the shards still
      to write (a lazy sequence then computes nothing for complete shards); other iterables are
      drawn in order and the items of complete shards are dropped.
    num_shards: number of shards of the split.
    progress: show a tqdm bar on stderr.
    num_examples: the length of `examples` when it has no `len()`.
    shard_indices: the shards this call writes (another process writes the others: process p
      of n takes `range(p, num_shards, n)`); default all.
  """
  if num_examples is None:
    if not hasattr(examples, "__len__"):
      raise ValueError("examples has no len(); pass num_examples")
    num_examples = len(examples)
  bounds = shard_bounds(num_examples, num_shards)
  owned = list(range(num_shards)) if shard_indices is None else sorted(set(shard_indices))
  if any(not 0 <= k < num_shards for k in owned):
    raise ValueError(f"shard_indices {list(shard_indices)} outside 0..{num_shards - 1}")
  folder = dataset_dir(out_dir, name)
  folder.mkdir(parents=True, exist_ok=True)
  _check_plan(folder, name, split, num_examples, num_shards)
  todo = [k for k in owned if not shard_path(out_dir, name, split, k, num_shards).exists()]
  spec = features()
  bar = _progress_bar(sum(bounds[k][1] - bounds[k][0] for k in todo), split, progress)
  for k, chunk in _chunks(examples, bounds, todo):
    _write_shard(shard_path(out_dir, name, split, k, num_shards), chunk, spec, bar)
  bar.close()
  with _META_LOCK:
    _write_metadata_if_complete(out_dir, name, spec)
  return [shard_path(out_dir, name, split, k, num_shards) for k in owned]


def _check_plan(folder: pathlib.Path, name, split, num_examples, num_shards):
  """A restart must describe the same split, or its shards would mix two plans."""
  plan_file = folder / f".{name}-{split}.plan.json"
  plan = dict(num_examples=num_examples, num_shards=num_shards)
  if plan_file.exists():
    old = json.loads(plan_file.read_text())
    if old != plan:
      raise ValueError(f"split {split!r} in {folder} was started with {old}, this call asks "
                       f"{plan}; use the same examples and num_shards, or a new out_dir")
  else:
    _atomic_write(plan_file, json.dumps(plan).encode())


def _chunks(examples, bounds, todo):
  """Yields (k, list of examples of shard k) for the shards in `todo`, in order."""
  if isinstance(examples, Sequence):
    for k in todo:
      yield k, (examples[i] for i in range(*bounds[k]))
    return
  it, pos = iter(examples), 0
  for k in todo:
    start, end = bounds[k]
    for _ in range(start - pos):
      next(it)
    pos = end
    yield k, (next(it) for _ in range(start, end))


def _write_shard(path: pathlib.Path, chunk, spec, bar) -> None:
  from array_record.python import array_record_module
  tmp = path.with_name(f".{path.name}.incomplete")  # hidden: not matched by TFDS's template
  writer = array_record_module.ArrayRecordWriter(os.fspath(tmp), "group_size:1")
  try:
    for ex in chunk:
      writer.write(spec.serialize_example(_record(ex)))
      bar.update(1)
  finally:
    writer.close()
  os.replace(tmp, path)


def _record(ex: dict) -> dict:
  from PIL import Image
  data = ex["image_bytes"]
  if not isinstance(data, bytes):
    raise ValueError(f"image_bytes of {ex.get('image_id')!r} must be bytes, got {type(data)}")
  with Image.open(io.BytesIO(data)) as im:  # reads the header only
    w, h = im.size
  edges = pack_edges(ex["edges"])
  if (edges["height"], edges["width"]) != (h, w):
    raise ValueError(f"edges of {ex['image_id']!r} are {edges['height']}x{edges['width']}, "
                     f"the image is {h}x{w}")
  return dict(image=data, edges=edges, image_id=str(ex["image_id"]))


def _write_metadata_if_complete(out_dir, name: str, spec) -> None:
  """(Re)writes dataset_info.json with every split whose shards all exist."""
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core.file_adapters import ArrayRecordFileAdapter
  folder = dataset_dir(out_dir, name)
  infos = []
  for plan_file in sorted(folder.glob(f".{name}-*.plan.json")):
    split = plan_file.name[len(name) + 2:-len(".plan.json")]
    n = json.loads(plan_file.read_text())["num_shards"]
    paths = [shard_path(out_dir, name, split, k, n) for k in range(n)]
    if not all(p.exists() for p in paths):
      continue
    template = tfds.core.ShardedFileTemplate(data_dir=folder, template=_TEMPLATE,
                                             dataset_name=name, split=split,
                                             filetype_suffix="array_record")
    infos.append(tfds.core.SplitInfo(
        name=split, shard_lengths=[ArrayRecordFileAdapter.num_examples(p) for p in paths],
        num_bytes=sum(p.stat().st_size for p in paths), filename_template=template))
  if not infos:
    return
  # What tfds.folder_dataset.write_metadata does, minus its demand that every split on disk be
  # listed: a split still being written must stay invisible.
  from tensorflow_datasets.core import dataset_info, file_adapters, utils
  identity = dataset_info.DatasetIdentity(name=name, version=utils.Version(VERSION),
                                          data_dir=os.fspath(folder), module_name="")
  info = dataset_info.DatasetInfo(
      builder=identity, features=spec, description="Photos with SA-ICM edge maps (SAM masks -> "
      "label map -> Canny), written by icmh_jax.data.sam_edges")
  info.set_file_format(file_adapters.FileFormat.ARRAY_RECORD)
  info.set_splits(tfds.core.SplitDict(infos))
  info.write_to_directory(folder)


def _atomic_write(path: pathlib.Path, data: bytes) -> None:
  tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
  tmp.write_bytes(data)
  os.replace(tmp, path)


def _progress_bar(total: int, split: str, enabled: bool):
  from tqdm import tqdm
  return tqdm(total=total, desc=f"write {split}", unit="img", file=sys.stderr,
              disable=not enabled)


def decode_image(data: bytes) -> np.ndarray:
  """Encoded image bytes -> uint8 [H, W, 3] RGB (greyscale and palette images converted), the
  decoding both the loader and the precompute use, so edge maps align with training images."""
  from PIL import Image
  with Image.open(io.BytesIO(data)) as im:
    return np.asarray(im.convert("RGB"))


class SamEdgesSource:
  """Random-access records of a written split (works as a grain data source).

  `source[i]` -> dict(image uint8 [H, W, 3] RGB, edges bool [H, W], image_id str);
  `source.image_bytes(i)` -> the stored encoded bytes.
  """

  def __init__(self, out_dir, name: str, split: str):
    import tensorflow_datasets as tfds
    folder = dataset_dir(out_dir, name)
    if not (folder / "dataset_info.json").exists():
      raise FileNotFoundError(f"no complete dataset {name!r} in {out_dir} (expected "
                              f"{folder}/dataset_info.json; is a write_split still running?)")
    builder = tfds.builder_from_directory(os.fspath(folder))
    if split not in builder.info.splits:
      raise ValueError(f"split {split!r} not in {folder}; complete splits: "
                       f"{sorted(builder.info.splits)}")
    # Image bytes are decoded here with PIL (RGB even for greyscale JPEGs), not by TFDS.
    self._source = builder.as_data_source(split=split,
                                          decoders={"image": tfds.decode.SkipDecoding()})

  def __len__(self) -> int:
    return len(self._source)

  def image_bytes(self, i: int) -> bytes:
    return self._source[i]["image"]

  def __getitem__(self, i: int) -> dict[str, Any]:
    if not -len(self) <= i < len(self):
      raise IndexError(f"record {i} out of range for {len(self)} records")
    rec = self._source[i % len(self)]
    image = decode_image(rec["image"])
    e = rec["edges"]
    image_id = rec["image_id"]
    return dict(image=image, edges=unpack_edges(e["packed"], e["height"], e["width"]),
                image_id=image_id.decode() if isinstance(image_id, bytes) else str(image_id))


def load_split(out_dir, name: str, split: str) -> SamEdgesSource:
  """Opens a written split for random access; see `SamEdgesSource`."""
  return SamEdgesSource(out_dir, name, split)
