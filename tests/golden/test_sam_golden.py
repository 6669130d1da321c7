"""golden-check sam: the Flax SAM port passes the PyTorch golden set and fails on a bad one."""

import json

import numpy as np
import pytest

from icmh_jax.convert.sam import from_torch
from icmh_jax.golden import sam as golden_sam
from icmh_jax.golden.report import GoldenReport
from icmh_jax.sam.model import config_from_golden
from icmh_jax.sam.predictor import SamPredictor


def _golden_paths(reference_dir):
  return reference_dir / "sam" / "sam_golden.npz", reference_dir / "sam" / "sam_golden.json"


@pytest.mark.slow  # 33 s
def test_sam_matches_golden_vectors(reference_dir):
  report = golden_sam.check(*_golden_paths(reference_dir), amg=False)
  failed = [r for r in report.rows if not r.passed]
  assert report.passed, failed
  names = {r.name for r in report.rows}
  assert len(names) == len(report.rows) >= 70  # weights, input, encoder, 5 prompts, unit tests
  for row in ("encoder/image_embedding", "prompt/box_and_point/lowres_logits",
              "prompt/point_and_mask_input/masks", "unit/output_upscaling_iid",
              "unit/block_global_relpos_interp", "unit/get_rel_pos/3"):
    assert row in names


@pytest.mark.slow
def test_sam_matches_golden_vectors_with_automatic_mask_generator(reference_dir):
  report = golden_sam.check(*_golden_paths(reference_dir))
  assert report.passed, [r for r in report.rows if not r.passed]
  assert any(r.name.startswith("amg/") for r in report.rows)


@pytest.fixture(scope="module")
def golden_and_predictor(reference_dir):
  meta = json.loads((reference_dir / "sam" / "sam_golden.json").read_text())
  with np.load(reference_dir / "sam" / "sam_golden.npz") as npz:
    z = golden_sam._Arrays({k: npz[k] for k in npz.files if k.startswith(("prompt/", "image"))})
  config = config_from_golden(meta)
  params = from_torch(golden_sam.rebuild_state_dict(meta["weights"]["specs"]), config)
  predictor = SamPredictor(params, config, matmul_precision="highest")
  predictor.set_image(z["image"])
  return meta, z, predictor


def test_prompt_rows_fail_on_perturbed_logits_and_a_flipped_confident_pixel(golden_and_predictor):
  meta, z, predictor = golden_and_predictor
  prompt = meta["prompts"][0]
  pre = f"prompt/{prompt['name']}/"
  good = GoldenReport("sam")
  golden_sam._check_prompt(z, meta, prompt, predictor, predictor.config, good)
  assert good.passed

  bad_z = golden_sam._Arrays(z)
  bad_z[pre + "lowres_logits"] = z[pre + "lowres_logits"] + np.float32(2e-3)
  masks = np.unpackbits(z[pre + "masks_packed"], axis=-1)
  masks[1, 200, 300] ^= 1  # at the prompt point: a confident logit, so the flip must be caught
  bad_z[pre + "masks_packed"] = np.packbits(masks, axis=-1)
  bad = GoldenReport("sam")
  golden_sam._check_prompt(bad_z, meta, prompt, predictor, predictor.config, bad)
  failed = {r.name for r in bad.rows if not r.passed}
  assert failed == {pre + "lowres_logits", pre + "masks"}
