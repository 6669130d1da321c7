"""`icmh bench sam` through the CLI on the tiny model.

Slow: the tiny SAM still encodes at 1024 x 1024. The harness it reports through (median of the
timed runs, compile timed apart) is checked in the default run by tests/benchmarks/test_harness.py.
"""

import json

import pytest

from icmh_jax import cli


@pytest.mark.slow
def test_bench_sam_reports_images_per_second_with_compile_apart(capsys):
  code = cli.main(["bench", "sam", "--model", "tiny", "--points-per-side", "2",
                   "--points-per-batch", "4", "--image-size", "48x64", "--repeats", "1", "--json"])
  assert code == 0
  res = json.loads(capsys.readouterr().out)["results"]
  gen = res["generate"]
  assert res["images_per_s"] == 1.0 / gen["median_s"]
  assert gen["first_call_s"] > 0 and len(gen["runs_s"]) == 1
  assert res["image_hw"] == [48, 64] and res["model"] == "tiny"
  # 4 points x 3 masks with the filters off: at least one mask survives NMS, each painted.
  assert 1 <= res["num_masks"] <= 12 and res["edge_pixels"] is not None
  # patch 49216 + pos 262144 + window block 51712 + global block 58112 + neck 607232
  assert res["encoder_params"] == 1028416
