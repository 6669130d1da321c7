"""Evaluation image sets: folders (Kodak) with named edge sources, and clear errors."""

import numpy as np
import pytest
import skimage.data
from PIL import Image

from icmh_jax.errors import ConfigError, ImageError
from icmh_jax.evaluation import images


def test_folder_images_are_read_sorted_cropped_with_canny_edges(tmp_path):
  photo = skimage.data.astronaut()
  Image.fromarray(photo[:100, :120]).save(tmp_path / "b.png")
  Image.fromarray(photo[200:300, 200:300]).save(tmp_path / "a.png")
  (tmp_path / "notes.txt").write_text("not an image")
  got = images.load_images(str(tmp_path), crop=64)
  assert [g.name for g in got] == ["a", "b"]
  b = got[1]
  np.testing.assert_array_equal(b.x, photo[18:82, 28:92].astype(np.float32) / 255)
  from icmh_jax.sam.edges import canny_edge_map
  np.testing.assert_array_equal(b.edges, canny_edge_map(photo[18:82, 28:92]))
  assert b.edge_source == "canny" and b.edges.any()


def test_folder_without_edges_and_with_limit(tmp_path):
  for k in range(3):
    Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(tmp_path / f"{k}.png")
  got = images.from_folder(tmp_path, edges="none", limit=2)
  assert [g.name for g in got] == ["0", "1"] and got[1].edges is None
  assert got[1].x.max() == pytest.approx(40 / 255)


def test_bad_data_arguments_raise_clear_errors(tmp_path):
  with pytest.raises(ConfigError, match="neither a folder nor one of bundled, coco_val"):
    images.load_images(str(tmp_path / "missing"))
  with pytest.raises(ConfigError, match="needs the folder"):
    images.load_images("coco_val")
  with pytest.raises(ImageError, match="no image"):
    images.from_folder(tmp_path)
  with pytest.raises(ConfigError, match="edges='sam'"):
    images.from_folder(tmp_path, edges="sam")


def test_coco_val_reads_images_and_their_edge_maps_from_the_dataset(tmp_path):
  import io
  from icmh_jax.data import sam_edges
  rng = np.random.default_rng(0)
  examples = []
  for k in range(2):
    image = rng.integers(0, 256, (20 + k, 30, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    examples.append(dict(image_id=f"{k:012d}", image_bytes=buf.getvalue(),
                         edges=rng.uniform(size=image.shape[:2]) < 0.3, image=image))
  sam_edges.write_split(tmp_path, "coco_sam_edges", "validation",
                        [{k: e[k] for k in ("image_id", "image_bytes", "edges")} for e in examples],
                        progress=False)
  got = images.load_images("coco_val", data_dir=str(tmp_path))
  assert [g.name for g in got] == ["000000000000", "000000000001"]
  for g, e in zip(got, examples):
    np.testing.assert_array_equal(g.x, e["image"].astype(np.float32) / 255)
    np.testing.assert_array_equal(g.edges, e["edges"])
    assert g.edge_source == "dataset:coco_sam_edges"
  with pytest.raises(ConfigError, match="cannot open coco_sam_edges/test"):
    images.load_images("coco_val", data_dir=str(tmp_path), split="test")
