"""precision_curve: the window arithmetic (default suite) and a short three-run comparison (slow)."""

import json
import os

import numpy as np
import pytest

from icmh_jax.benchmarks import precision_curve
from icmh_jax.errors import ConfigError


def test_window_gaps_compare_consecutive_window_means_and_drop_a_partial_window():
  test = [1.0, 3.0, 10.0, 10.5, 99.0]  # windows of 2: means 2 and 10.25; 99 is a partial window
  reference = [2.0, 2.0, 10.0, 10.0, 0.0]
  g = precision_curve.window_gaps(test, reference, window=2)
  assert [(w["first"], w["last"]) for w in g] == [(1, 2), (3, 4)]
  assert g[0]["relative"] == 0.0 and g[0]["within"]
  assert g[1]["test"] == 10.25 and g[1]["relative"] == pytest.approx(0.025)
  assert not g[1]["within"]  # 2.5 % > 2 %


@pytest.mark.parametrize("window", [0, 6])
def test_window_longer_than_the_run_or_zero_raises(window):
  with pytest.raises(ConfigError, match=f"window {window} must be between 1"):
    precision_curve.window_gaps([1.0] * 5, [1.0] * 5, window)


@pytest.mark.slow
def test_short_run_starts_bfloat16_at_float32s_loss_and_writes_consistent_gaps(tmp_path):
  result = precision_curve.compare(str(tmp_path), steps=4, window=2, batch=2, crop=128)
  assert result["same_batches"]
  f32, bf16, control = (result["curves"][r]["loss"] for r in ("float32", "bfloat16", "control"))
  # Same weights, batch and (rounded) noise at step 1: bfloat16 differs only by its arithmetic.
  assert bf16[0] == pytest.approx(f32[0], rel=0.01) and bf16[0] != f32[0]
  assert control[0] != f32[0]  # other noise draws
  with open(os.path.join(tmp_path, "precision_curve.json")) as f:
    saved = json.load(f)
  for i, g in enumerate(saved["gaps"]["loss"]):
    assert g["test"] == pytest.approx(np.mean(bf16[2 * i:2 * i + 2]))
    assert g["reference"] == pytest.approx(np.mean(f32[2 * i:2 * i + 2]))
  assert saved["within"] == all(g["within"] for g in saved["gaps"]["loss"])
  assert os.path.getsize(os.path.join(tmp_path, "precision_curve.png")) > 0
