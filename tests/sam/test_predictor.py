"""SamPredictor on the golden tiny model: preprocessing, predict and predict_points vs reference."""

import json

import numpy as np
import pytest

from icmh_jax.convert.sam import from_torch
from icmh_jax.golden.sam import rebuild_state_dict
from icmh_jax.sam.model import config_from_golden
from icmh_jax.sam.predictor import (SamPredictor, get_preprocess_shape, preprocess,
                                    resize_longest_side)

ROWS = [0, 1, 2, 100, 199, 200, 201, 300, 397, 398, 399]  # upscaled_logits_rows (JSON index)


@pytest.fixture(scope="module")
def golden(reference_dir):
  meta = json.loads((reference_dir / "sam" / "sam_golden.json").read_text())
  with np.load(reference_dir / "sam" / "sam_golden.npz") as npz:
    z = {k: npz[k] for k in npz.files if not k.startswith(("amg/", "unit/"))}
  return meta, z


@pytest.fixture(scope="module")
def predictor(golden):
  meta, z = golden
  config = config_from_golden(meta)
  params = from_torch(rebuild_state_dict(meta["weights"]["specs"]), config)
  p = SamPredictor(params, config, points_per_batch=2, matmul_precision="highest")
  p.set_image(z["image"])
  return p


def test_resize_and_preprocess_are_bit_exact_to_the_reference(golden):
  meta, z = golden
  config = config_from_golden(meta)
  resized = resize_longest_side(z["image"], 1024)
  np.testing.assert_array_equal(resized, z["input_resized_u8"])
  x = preprocess(resized, config).transpose(0, 3, 1, 2)
  np.testing.assert_array_equal(x[:, :, [0, 1, 341, 681, 682, 683, 1023]], z["input_1024_rows"])
  assert not x[:, :, 683:].any()  # zero padding in the normalised space


def test_get_preprocess_shape_rounds_half_up_like_the_reference(golden):
  meta, _ = golden
  r = meta["unit_tests"]["resize_longest_side"]
  for case in r["get_preprocess_shape"]:
    assert list(get_preprocess_shape(*case["in"], r["target_length"])) == case["out"], case


def test_image_of_target_size_is_returned_untouched():
  image = np.random.default_rng(0).integers(0, 256, (1024, 700, 3), dtype=np.uint8)
  np.testing.assert_array_equal(resize_longest_side(image, 1024), image)


@pytest.mark.parametrize("multimask", [True, False])
def test_predict_returns_the_reference_outputs_for_a_point(golden, predictor, multimask):
  _, z = golden
  masks, iou, lowres = predictor.predict(np.array([[300.0, 200.0]]), np.array([1]),
                                         multimask_output=multimask)
  sel = slice(1, 4) if multimask else slice(0, 1)
  np.testing.assert_allclose(lowres, z["prompt/point/lowres_logits"][sel], atol=5e-4)
  np.testing.assert_allclose(iou, z["prompt/point/iou_predictions"][sel], atol=1e-5)
  expected = np.unpackbits(z["prompt/point/masks_packed"], axis=-1)[..., :600].astype(bool)
  assert masks.dtype == bool
  np.testing.assert_array_equal(masks, expected[sel])


def test_predict_points_matches_the_reference_multimask_logits(golden, predictor):
  _, z = golden
  logits, iou = predictor.predict_points(np.array([[300.0, 200.0]]), np.array([1]))
  logits, iou = np.asarray(logits), np.asarray(iou)
  assert logits.shape == (1, 3, 400, 600) and logits.dtype == np.float32
  np.testing.assert_allclose(logits[0][:, ROWS], z["prompt/point/upscaled_logits_rows"][1:],
                             atol=5e-4)
  np.testing.assert_allclose(iou[0], z["prompt/point/iou_predictions"][1:], atol=1e-5)


def test_predict_points_padding_and_batching_do_not_change_results(predictor):
  points = np.array([[300.0, 200.0], [450.5, 100.25], [10.0, 390.0]])
  labels = np.array([1, 1, 0])
  batched, iou_b = predictor.predict_points(points, labels, upscale=False)  # batches of 2, padded
  assert batched.shape == (3, 3, 256, 256) and iou_b.shape == (3, 3)
  for i in range(3):
    single, iou_s = predictor.predict_points(points[i:i + 1], labels[i:i + 1], upscale=False)
    np.testing.assert_allclose(np.asarray(batched)[i], np.asarray(single)[0], atol=1e-4)
    np.testing.assert_allclose(np.asarray(iou_b)[i], np.asarray(iou_s)[0], atol=1e-6)
  assert not np.allclose(np.asarray(batched)[0], np.asarray(batched)[2])


def test_predictor_rejects_bad_input(golden, predictor):
  meta, z = golden
  fresh = SamPredictor(predictor.params, predictor.config)
  with pytest.raises(ValueError, match="call set_image"):
    fresh.predict(np.array([[1.0, 1.0]]), np.array([1]))
  with pytest.raises(ValueError, match="uint8"):
    fresh.set_image(z["image"].astype(np.float32))
  with pytest.raises(ValueError, match="2 points but 1 labels"):
    predictor.predict_points(np.zeros((2, 2)), np.ones(1))
  with pytest.raises(ValueError, match="points_per_batch"):
    SamPredictor(predictor.params, predictor.config, points_per_batch=0)
