"""Offline edge-map precompute: folder/COCO listing, canny source end to end, resume, errors."""

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image

from icmh_jax.data import sam_edges
from icmh_jax.errors import IcmhError
from icmh_jax.sam import edges, precompute

PHOTOS = {"a": (skimage.data.astronaut()[::8, ::8], "PNG"),
          "b": (skimage.data.coffee()[::8, ::8], "JPEG"),
          "c": (skimage.data.camera()[::8, ::8], "PNG"),   # greyscale: stored as is, read as RGB
          "d": (skimage.data.chelsea()[::8, ::8], "JPEG")}


def _write_photos(folder):
  folder.mkdir(parents=True)
  for name, (img, fmt) in PHOTOS.items():
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    (folder / f"{name}.{fmt.lower()}").write_bytes(buf.getvalue())
  (folder / "notes.txt").write_text("not an image")


def _main(*argv):
  return precompute.main(["--no-progress", *argv])


def test_canny_precompute_of_a_coco_folder_round_trips_bytes_ids_and_edges(tmp_path):
  _write_photos(tmp_path / "coco" / "val2017")
  out = tmp_path / "tfds"
  assert _main("--source", "coco", "--split", "validation", "--images", str(tmp_path / "coco"),
               "--out", str(out), "--mask-source", "canny", "--num-shards", "2",
               "--process-index", "0", "--process-count", "1", "--workers", "2") == 0
  src = sam_edges.load_split(out, "coco_sam_edges", "validation")
  assert [src[i]["image_id"] for i in range(len(src))] == ["a", "b", "c", "d"]
  for i, path in enumerate(sorted((tmp_path / "coco" / "val2017").glob("[abcd].*"))):
    data = path.read_bytes()
    assert src.image_bytes(i) == data
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(src[i]["image"], rgb)
    np.testing.assert_array_equal(src[i]["edges"], edges.canny_edge_map(rgb))
    assert src[i]["edges"].any()


def test_rerun_skips_complete_shards_and_second_process_completes_the_split(tmp_path, monkeypatch):
  _write_photos(tmp_path / "imgs")
  common = ("--source", "folder", "--split", "train", "--images", str(tmp_path / "imgs"),
            "--out", str(tmp_path / "tfds"), "--mask-source", "canny", "--num-shards", "3",
            "--process-count", "2")
  assert _main(*common, "--process-index", "0") == 0  # shards 0 and 2
  with pytest.raises(FileNotFoundError):
    sam_edges.load_split(tmp_path / "tfds", "coco_sam_edges", "train")
  calls, original = [], edges.canny_edge_map
  monkeypatch.setattr(edges, "canny_edge_map", lambda im: calls.append(1) or original(im))
  assert _main(*common, "--process-index", "1") == 0  # shard 1 only: image b (index 1)
  assert _main(*common, "--process-index", "0") == 0  # nothing left to do
  assert len(calls) == 1
  assert len(sam_edges.load_split(tmp_path / "tfds", "coco_sam_edges", "train")) == 4


def test_shards_are_split_over_processes_then_local_workers():
  assert precompute.assign_shards(10, 1, 2, 2) == [[1, 5, 9], [3, 7]]
  assert precompute.assign_shards(3, 0, 1, 4) == [[0], [1], [2], []]


def test_sam_without_checkpoint_is_a_usage_error_never_a_fallback(tmp_path, capsys):
  _write_photos(tmp_path / "imgs")
  with pytest.raises(SystemExit) as e:
    _main("--source", "folder", "--split", "train", "--images", str(tmp_path / "imgs"),
          "--out", str(tmp_path / "tfds"))
  assert e.value.code == 2
  assert "--sam-checkpoint" in capsys.readouterr().err
  assert not (tmp_path / "tfds").exists()
  assert _main("--source", "folder", "--split", "train", "--images", str(tmp_path / "none"),
               "--out", str(tmp_path / "tfds"), "--mask-source", "canny") == 1
  assert _main("--source", "folder", "--split", "train", "--images", str(tmp_path / "imgs"),
               "--out", str(tmp_path / "tfds"), "--mask-source", "sam",
               "--sam-checkpoint", str(tmp_path / "missing.pth")) == 1
  assert "SAM checkpoint not found" in capsys.readouterr().err


def test_sam_edge_fn_paints_generator_masks_and_can_keep_the_255_largest():
  class Grid:  # fake predictor: every point gets its own 2x2 block (400 masks on 40x40)
    config = None

    def set_image(self, image):
      self.shape = image.shape[:2]

    def predict_points(self, points, labels):
      h, w = self.shape
      yy, xx = np.mgrid[:h, :w]
      cell = ((yy[None] // 2 == (points[:, 1, None, None] // 2)) &
              (xx[None] // 2 == (points[:, 0, None, None] // 2)))
      m = np.where(cell, 5.0, -5.0).astype(np.float32)
      logits = np.stack([m, np.full_like(m, -5.0), np.full_like(m, -5.0)], axis=1)
      return logits, np.full((len(points), 3), 0.99, np.float32)

  image = np.zeros((40, 40, 3), np.uint8)
  kwargs = dict(points_per_side=20, points_per_batch=400)
  with pytest.raises(ValueError, match="400 masks"):
    precompute.sam_edge_fn(Grid(), kwargs)(image)
  e = precompute.sam_edge_fn(Grid(), kwargs, too_many="largest")(image)
  want = edges.edge_map(np.stack([np.kron(np.eye(1, 400, k, dtype=bool).reshape(20, 20),
                                          np.ones((2, 2), bool)) for k in range(255)]))
  np.testing.assert_array_equal(e, want)


def test_checkpoint_without_a_size_in_its_name_needs_sam_model(tmp_path):
  ckpt = tmp_path / "weights.npz"
  np.savez(ckpt, x=np.zeros(1))
  with pytest.raises(IcmhError, match="--sam-model"):
    precompute.load_sam(ckpt, None)


@pytest.mark.slow
def test_sam_mask_source_end_to_end_with_random_vit_b_npz(tmp_path):
  import jax
  from icmh_jax.convert.sam import to_torch
  from icmh_jax.sam import amg
  from icmh_jax.sam.model import get_config, init_params
  from icmh_jax.sam.predictor import SamPredictor
  config = get_config("vit_b")
  params = init_params(config, jax.random.PRNGKey(1))
  np.savez(tmp_path / "sam_vit_b_random.npz", **to_torch(params, config))
  folder = tmp_path / "imgs"
  folder.mkdir()
  img = skimage.data.coffee()[::12, ::12]
  Image.fromarray(img).save(folder / "coffee.png")
  amg_flags = dict(points_per_side=2, points_per_batch=4, pred_iou_thresh=0.0,
                   stability_score_thresh=0.0)
  argv = ["--source", "folder", "--split", "train", "--images", str(folder), "--out",
          str(tmp_path / "tfds"), "--sam-checkpoint", str(tmp_path / "sam_vit_b_random.npz")]
  for k, v in amg_flags.items():
    argv += [f"--amg-{k.replace('_', '-')}", str(v)]
  assert _main(*argv) == 0
  got = sam_edges.load_split(tmp_path / "tfds", "coco_sam_edges", "train")[0]["edges"]
  gen = amg.AutomaticMaskGenerator(SamPredictor(params, config, points_per_batch=4), **amg_flags)
  np.testing.assert_array_equal(got, edges.edge_map(gen.generate(img), img.shape[:2]))
