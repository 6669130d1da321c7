"""SA-ICM edge maps: the golden AMG masks give the golden label and edge maps exactly."""

import hashlib
import json

import numpy as np
import pytest

from icmh_jax.sam import edges

CONFIGS = ("pps8", "pps4_crop1", "pps8_batch16_minarea100")


@pytest.fixture(scope="module")
def golden(reference_dir):
  meta = json.loads((reference_dir / "sam" / "sam_golden.json").read_text())
  npz = np.load(reference_dir / "sam" / "sam_golden.npz")
  return meta, npz


def _unpack(a, width=600):
  return np.unpackbits(a, axis=-1)[..., :width].astype(bool)


@pytest.mark.parametrize("name", CONFIGS)
def test_edge_map_of_golden_masks_equals_golden_edge_map(golden, name):
  meta, npz = golden
  cfg = next(c for c in meta["amg"]["configs"] if c["name"] == name)
  m = _unpack(npz[f"amg/{name}/masks_packed"])
  label = edges.label_map(m)
  np.testing.assert_array_equal(label, npz[f"amg/{name}/label_map"])
  assert hashlib.sha256(label.tobytes()).hexdigest() == cfg["edge_map"]["label_map_sha256"]
  e = edges.edge_map(m)
  np.testing.assert_array_equal(e, _unpack(npz[f"amg/{name}/edge_map_packed"]))
  assert int(e.sum()) == cfg["edge_map"]["edge_pixels"]
  records = [dict(segmentation=s) for s in m]
  np.testing.assert_array_equal(edges.edge_map(records), e)
  rles = [dict(segmentation=dict(size=[400, 600], counts=c)) for c in cfg["rle_counts"]]
  np.testing.assert_array_equal(edges.edge_map(rles), e)


def test_smaller_masks_are_painted_on_top_and_equal_areas_keep_generator_order():
  m = np.zeros((4, 6, 8), bool)
  m[0, 1:5, 1:7] = True  # 24 px
  m[1, 2:4, 2:4] = True  # 4 px, inside mask 0
  m[2, 0, :4] = True     # 4 px, tied with mask 1: ranked after it
  m[3, :, :] = True      # 48 px, everything
  label = edges.label_map(m)
  want = np.full((6, 8), 1, np.uint8)      # mask 3 is rank 1
  want[1:5, 1:7] = 2                       # mask 0 rank 2
  want[2:4, 2:4] = 3                       # mask 1 rank 3
  want[0, :4] = 4                          # mask 2 rank 4
  np.testing.assert_array_equal(label, want)


def test_edge_map_is_empty_without_masks_and_refuses_more_than_255():
  assert not edges.edge_map(np.zeros((0, 5, 7), bool), shape=(5, 7)).any()
  assert edges.edge_map([], shape=(5, 7)).shape == (5, 7)
  many = np.zeros((256, 4, 4), bool)
  with pytest.raises(ValueError, match="256 masks"):
    edges.label_map(many)
  assert edges.label_map(many[:255]).max() == 0


def test_label_change_gives_one_pixel_edges_on_both_sides_only_at_the_change():
  label = np.zeros((12, 16), np.uint8)
  label[:, 8:] = 1
  e = edges.edges_of_label_map(label)
  assert e[:, 7:9].any(axis=1).all()            # every row has an edge at the step
  assert not np.delete(e, [7, 8], axis=1).any() # and nowhere else
  assert e[:, 7:9].sum(axis=1).max() == 1       # thinned to one pixel


def test_canny_source_finds_a_step_and_nothing_on_a_flat_image():
  flat = np.full((32, 40, 3), 90, np.uint8)
  assert not edges.canny_edge_map(flat).any()
  step = flat.copy()
  step[:, 20:] = 200
  e = edges.canny_edge_map(step)
  assert e[2:-2, 18:22].any(axis=1).all()
  assert not np.delete(e, range(17, 23), axis=1).any()
  with pytest.raises(ValueError, match="uint8"):
    edges.canny_edge_map(step.astype(np.float32))
