"""The bundled photo set: fixed split of real photos, Canny edge maps, written and read via TFDS."""

import json

import numpy as np
import pytest

from icmh_jax.data import bundled
from icmh_jax.errors import ConfigError
from icmh_jax.sam import edges


def test_prepared_splits_read_back_the_photos_and_their_canny_edges(tmp_path):
  data_dir = bundled.prepare(str(tmp_path))
  val = bundled.load(data_dir, "validation")
  assert [val[i]["image_id"] for i in range(len(val))] == [
      f"{p}/{n}" for p, n in bundled.VALIDATION]
  chelsea = bundled.load_photo("skimage", "chelsea")
  rec = val[0]
  np.testing.assert_array_equal(rec["image"], chelsea)  # PNG is lossless
  np.testing.assert_array_equal(rec["edges"], edges.canny_edge_map(chelsea))
  assert 0.001 < rec["edges"].mean() < 0.5
  train = bundled.load(data_dir, "train")
  assert len(train) == len(bundled.TRAIN)
  assert not {r for r in bundled.TRAIN} & {r for r in bundled.VALIDATION}
  grey = train[[n for _, n in bundled.TRAIN].index("camera")]["image"]
  assert grey.shape[-1] == 3 and np.array_equal(grey[..., 0], grey[..., 2])


def test_unknown_mask_source_and_sam_without_checkpoint_are_refused_not_substituted(tmp_path):
  with pytest.raises(ConfigError, match="mask source 'hed' is not available.*allowed: canny, sam"):
    bundled.prepare(str(tmp_path), mask_source="hed")
  with pytest.raises(ConfigError, match="need a SAM checkpoint.*--sam-checkpoint"):
    bundled.prepare(str(tmp_path), mask_source="sam")
  assert not list(tmp_path.iterdir())


class _BoxGenerator:
  """Stands in for SAM's automatic mask generator: two boxes per image, settings recorded."""

  settings = []

  def __init__(self, predictor, **kwargs):
    self.settings.append((predictor, kwargs))

  @staticmethod
  def generate(image):
    h, w = image.shape[:2]
    records = []
    for top, left in ((h // 4, w // 4), (h // 2, w // 3)):
      m = np.zeros((h, w), bool)
      m[top:top + h // 3, left:left + w // 3] = True
      records.append({"segmentation": m, "area": int(m.sum())})
    return records


def test_sam_mask_source_paints_the_generator_masks_and_needs_no_checkpoint_once_written(
    tmp_path, monkeypatch):
  """The `sam` source's plumbing, with SAM's network stood in for (the real tiny SAM runs in the
  slow test below; SAM's generator and edge rule against the golden set: tests/sam/)."""
  from icmh_jax.sam import amg, precompute, predictor
  loads = []
  monkeypatch.setattr(precompute, "load_sam",
                      lambda path, model: loads.append(path) or ("params", "config"))
  monkeypatch.setattr(predictor, "SamPredictor", lambda params, config: (params, config))
  monkeypatch.setattr(amg, "AutomaticMaskGenerator", _BoxGenerator)
  monkeypatch.setattr(_BoxGenerator, "settings", [])
  monkeypatch.setattr(bundled, "SPLITS", {"train": (("skimage", "coins"),),
                                          "validation": (("skimage", "chelsea"),)})
  grid = dict(points_per_side=4, pred_iou_thresh=0.0)
  data_dir = bundled.prepare(str(tmp_path), "sam", sam_checkpoint="sam_vit_b.pth", sam_amg=grid)
  assert loads == ["sam_vit_b.pth"] and _BoxGenerator.settings == [(("params", "config"), grid)]
  rec = bundled.load(data_dir, "validation", "sam")[0]
  chelsea = bundled.load_photo("skimage", "chelsea")
  np.testing.assert_array_equal(rec["image"], chelsea)
  want = edges.edge_map(_BoxGenerator.generate(chelsea), chelsea.shape[:2])
  np.testing.assert_array_equal(rec["edges"], want)
  assert want.any() and not np.array_equal(want, edges.canny_edge_map(chelsea))
  assert bundled.prepare(str(tmp_path), "sam") == data_dir  # written: no checkpoint needed
  assert loads == ["sam_vit_b.pth"]


@pytest.mark.slow
def test_sam_mask_source_writes_sam_edge_maps_and_needs_no_checkpoint_once_written(
    tmp_path, monkeypatch, reference_dir):
  from icmh_jax.convert.sam import from_torch
  from icmh_jax.golden.sam import rebuild_state_dict
  from icmh_jax.sam import amg, precompute
  from icmh_jax.sam.model import config_from_golden, param_shapes
  from icmh_jax.sam.predictor import SamPredictor
  # The golden set's small SAM (weights from its seed rule) stands in for an official checkpoint.
  meta = json.loads((reference_dir / "sam" / "sam_golden.json").read_text())
  config = config_from_golden(meta)
  params = from_torch(rebuild_state_dict(meta["weights"]["specs"]), config, param_shapes(config))
  loads = []
  monkeypatch.setattr(precompute, "load_sam",
                      lambda path, model: loads.append(path) or (params, config))
  monkeypatch.setattr(bundled, "SPLITS", {"train": (("skimage", "coins"),),
                                          "validation": (("skimage", "chelsea"),)})
  grid = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
  data_dir = bundled.prepare(str(tmp_path), "sam", sam_checkpoint="sam_vit_b.pth", sam_amg=grid)
  assert loads == ["sam_vit_b.pth"]
  rec = bundled.load(data_dir, "validation", "sam")[0]
  chelsea = bundled.load_photo("skimage", "chelsea")
  np.testing.assert_array_equal(rec["image"], chelsea)
  records = amg.AutomaticMaskGenerator(SamPredictor(params, config), **grid).generate(chelsea)
  assert records  # thresholds at 0: the random model's masks are kept, so the map has edges
  want = edges.edge_map(records, chelsea.shape[:2])
  np.testing.assert_array_equal(rec["edges"], want)
  assert want.any() and not np.array_equal(want, edges.canny_edge_map(chelsea))
  assert bundled.prepare(str(tmp_path), "sam") == data_dir  # written: no checkpoint needed
  assert loads == ["sam_vit_b.pth"]
