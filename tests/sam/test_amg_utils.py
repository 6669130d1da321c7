"""Automatic-mask-generator building blocks against the reference's unit results (sam_golden.json)."""

import json

import numpy as np
import pytest

from icmh_jax.sam import crops, masks, rle


@pytest.fixture(scope="module")
def units(reference_dir):
  meta = json.loads((reference_dir / "sam" / "sam_golden.json").read_text())
  return meta["unit_tests"]["amg_utils"]


def test_point_grids_match_reference_for_every_layer(units):
  for case in units["build_all_layer_point_grids"]:
    grids = crops.build_all_layer_point_grids(*case["args"])
    assert len(grids) == len(case["grids"])
    for got, want in zip(grids, case["grids"]):
      np.testing.assert_array_equal(got, np.asarray(want, np.float64))


def test_crop_boxes_and_layers_match_reference(units):
  for case in units["generate_crop_boxes"]:
    boxes, layers = crops.generate_crop_boxes(tuple(case["im_size"]), case["n_layers"],
                                              case["overlap_ratio"])
    assert boxes == case["crop_boxes_xyxy"]
    assert layers == case["layer_idxs"]


def test_stability_score_matches_reference_bit_for_bit(units):
  case = units["stability_score"]
  logits = np.asarray(case["logits"], np.float32)
  for c in case["cases"]:
    got = masks.stability_score(logits, c["mask_threshold"], c["offset"])
    np.testing.assert_array_equal(got, np.asarray(c["score"], np.float32))


def test_stability_score_is_the_same_under_jit_and_nan_for_empty_masks(units):
  import jax
  logits = np.asarray(units["stability_score"]["logits"], np.float32)
  inter, union = jax.jit(masks.stability_counts)(logits)
  np.testing.assert_array_equal(masks.stability_ratio(inter, union), masks.stability_score(logits))
  empty = np.full((1, 4, 4), -5.0, np.float32)
  assert np.isnan(masks.stability_score(empty)[0])


def test_inclusive_boxes_match_reference_in_numpy_and_jax(units):
  import jax
  case = units["batched_mask_to_box"]
  m = np.asarray(case["masks"], bool)
  want = np.asarray(case["boxes_xyxy_inclusive"])
  np.testing.assert_array_equal(masks.masks_to_boxes(m), want)
  np.testing.assert_array_equal(np.asarray(jax.jit(masks.masks_to_boxes)(m)), want)


def test_rle_counts_and_areas_match_reference_and_decode_back(units):
  case = units["mask_to_rle"]
  m = np.asarray(case["masks"], bool)
  got = rle.masks_to_rle(m)
  assert got == case["rles"]
  assert [rle.area_from_rle(r) for r in got] == case["areas"]
  for r, mi in zip(got, m):
    np.testing.assert_array_equal(rle.rle_to_mask(r), mi)


def test_crop_edge_filter_matches_reference_and_spares_the_full_image(units):
  case = units["is_box_near_crop_edge"]
  got = crops.is_box_near_crop_edge(np.asarray(case["boxes_crop_frame"]), case["crop_box"],
                                    case["orig_box"], case["atol"])
  np.testing.assert_array_equal(got, case["result"])
  boxes = np.array([[0, 0, 599, 399], [5, 300, 40, 399], [21, 21, 578, 378]])
  full = [0, 0, 600, 400]
  assert not crops.is_box_near_crop_edge(boxes, full, full).any()
  # Interior crop border x1 = 368: a box ending at 347 (21 px away) stays, 348 goes.
  inner = [0, 0, 368, 268]
  got = crops.is_box_near_crop_edge(np.array([[100, 100, 347, 200], [100, 100, 348, 200]]),
                                    inner, full)
  np.testing.assert_array_equal(got, [False, True])


def test_nms_keeps_reference_indices_with_ties_and_zero_area_boxes(units):
  case = units["nms"]
  for c in case["cases"]:
    keep = masks.box_nms(np.asarray(case["boxes_xyxy"], np.float32),
                         np.asarray(case["scores"], np.float32), c["iou_threshold"])
    assert keep.tolist() == c["keep"]


def test_remove_small_regions_matches_reference_for_holes_and_islands(units):
  case = units["remove_small_regions"]
  mask = np.asarray(case["mask"], bool)
  for c in case["cases"]:
    got, changed = masks.remove_small_regions(mask, c["area_thresh"], c["mode"])
    assert changed == c["changed"]
    np.testing.assert_array_equal(got, np.asarray(c["mask"], bool))


def test_remove_small_regions_keeps_the_largest_island_when_all_are_small():
  mask = np.zeros((6, 9), bool)
  mask[0, 0] = True
  mask[3:5, 4:6] = True  # 4 px: the largest
  got, changed = masks.remove_small_regions(mask, 10, "islands")
  assert changed and got.sum() == 4 and got[3:5, 4:6].all()
  with pytest.raises(ValueError, match="'edges'"):
    masks.remove_small_regions(mask, 10, "edges")
