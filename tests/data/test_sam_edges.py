"""coco_sam_edges: TFDS array_record round trip, resumable writing, edge packing."""

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image

from icmh_jax.data import sam_edges

NAME = "coco_sam_edges"


def _photos():
  """Three small real photos as (id, encoded bytes, decoded RGB, edges): PNG, JPEG, PNG."""
  out = []
  for i, (img, fmt) in enumerate([(skimage.data.astronaut()[100:148, 150:211], "PNG"),
                                  (skimage.data.coffee()[50:90, 60:117], "JPEG"),
                                  (skimage.data.chelsea()[:33, :45], "PNG")]):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, quality=90)
    data = buf.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    edges = np.random.default_rng(i).random(img.shape[:2]) > 0.7
    out.append(dict(image_id=f"photo_{i}", image_bytes=data, edges=edges, decoded=decoded))
  return out


def _examples(n):
  photos = _photos()
  return [photos[i % 3] | dict(image_id=f"photo_{i}") for i in range(n)]


class _Failing(list):
  """Examples whose item `fail_at` raises, the way a crash in the mask source would."""

  def __init__(self, items, fail_at):
    super().__init__(items)
    self.fail_at = fail_at

  def __getitem__(self, i):
    if i == self.fail_at:
      raise RuntimeError("killed")
    return super().__getitem__(i)


def test_round_trip_through_tfds_data_source_keeps_bytes_and_edges(tmp_path):
  import tensorflow_datasets as tfds
  examples = _examples(5)
  sam_edges.write_split(tmp_path, NAME, "train", examples, num_shards=2, progress=False)
  raw = tfds.data_source(NAME, data_dir=tmp_path, split="train",
                         decoders={"image": tfds.decode.SkipDecoding()})
  src = sam_edges.load_split(tmp_path, NAME, "train")
  assert len(raw) == len(src) == 5
  for i, ex in enumerate(examples):
    assert raw[i]["image"] == ex["image_bytes"]
    assert src.image_bytes(i) == ex["image_bytes"]
    rec = src[i]
    assert rec["image_id"] == ex["image_id"]
    np.testing.assert_array_equal(rec["edges"], ex["edges"])
    np.testing.assert_array_equal(rec["image"], ex["decoded"])


def test_interrupted_build_resumes_to_byte_identical_shards(tmp_path):
  examples = _examples(6)
  ref = sam_edges.write_split(tmp_path / "ref", NAME, "train", examples, num_shards=3,
                              progress=False)
  out = tmp_path / "resumed"
  with pytest.raises(RuntimeError, match="killed"):
    sam_edges.write_split(out, NAME, "train", _Failing(examples, fail_at=3), num_shards=3,
                          progress=False)
  folder = sam_edges.dataset_dir(out, NAME)
  assert sorted(p.name[-14:] for p in folder.glob(f"{NAME}-train*")) == ["00000-of-00003"]
  assert not (folder / "dataset_info.json").exists()  # an incomplete split is not readable
  with pytest.raises(FileNotFoundError):
    sam_edges.load_split(out, NAME, "train")
  shard0 = folder / ref[0].name
  shard0_mtime = shard0.stat().st_mtime_ns
  # The restart must not touch shard 0: its examples raise if indexed again.
  resumed = sam_edges.write_split(out, NAME, "train", _Failing(examples, fail_at=0),
                                  num_shards=3, progress=False)
  assert shard0.stat().st_mtime_ns == shard0_mtime
  for a, b in zip(ref, resumed):
    assert a.read_bytes() == b.read_bytes()
  assert len(sam_edges.load_split(out, NAME, "train")) == 6


def test_iterable_examples_and_sharded_writers_give_the_same_shards(tmp_path):
  examples = _examples(5)
  ref = sam_edges.write_split(tmp_path / "ref", NAME, "val", examples, num_shards=3,
                              progress=False)
  out = tmp_path / "two_procs"
  for p in range(2):  # process p of 2 writes shards p::2 from a plain generator
    sam_edges.write_split(out, NAME, "val", iter(examples), num_shards=3, progress=False,
                          num_examples=5, shard_indices=range(p, 3, 2))
  for a in ref:
    assert (sam_edges.dataset_dir(out, NAME) / a.name).read_bytes() == a.read_bytes()
  assert [r["image_id"] for r in sam_edges.load_split(out, NAME, "val")] == [
      f"photo_{i}" for i in range(5)]


def test_restart_with_other_plan_or_wrong_edges_is_refused(tmp_path):
  examples = _examples(4)
  sam_edges.write_split(tmp_path, NAME, "train", examples, num_shards=2, progress=False)
  with pytest.raises(ValueError, match="num_shards"):
    sam_edges.write_split(tmp_path, NAME, "train", examples, num_shards=4, progress=False)
  bad = [dict(examples[0], edges=examples[0]["edges"][:-1])]
  with pytest.raises(ValueError, match="edges of 'photo_0'"):
    sam_edges.write_split(tmp_path, NAME, "bad", bad, num_shards=1, progress=False)
  with pytest.raises(ValueError, match="split 'test' not in"):
    sam_edges.load_split(tmp_path, NAME, "test")


@pytest.mark.parametrize("width", [1, 7, 8, 9, 61])
def test_pack_unpack_edges_is_exact_for_any_width(width):
  edges = np.random.default_rng(width).random((5, width)) > 0.5
  p = sam_edges.pack_edges(edges)
  assert p["packed"].size == 5 * ((width + 7) // 8)
  np.testing.assert_array_equal(sam_edges.unpack_edges(**p), edges)


def test_partial_split_stays_unlisted_while_a_complete_split_is_readable(tmp_path):
  examples = _examples(4)
  sam_edges.write_split(tmp_path, NAME, "train", examples, num_shards=2, progress=False,
                        shard_indices=[1])
  sam_edges.write_split(tmp_path, NAME, "validation", examples[:2], num_shards=1, progress=False)
  assert len(sam_edges.load_split(tmp_path, NAME, "validation")) == 2
  with pytest.raises(ValueError, match="complete splits: \\['validation'\\]"):
    sam_edges.load_split(tmp_path, NAME, "train")
  sam_edges.write_split(tmp_path, NAME, "train", examples, num_shards=2, progress=False,
                        shard_indices=[0])
  assert [r["image_id"] for r in sam_edges.load_split(tmp_path, NAME, "train")] == [
      f"photo_{i}" for i in range(4)]
  assert len(sam_edges.load_split(tmp_path, NAME, "validation")) == 2
