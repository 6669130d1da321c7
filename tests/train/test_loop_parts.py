"""The loop's small parts: periodic helper, interval summaries, non-finite guard, JSONL writer."""

import json
import math

import numpy as np
import pytest

from icmh_jax.train import loop, metrics_writer


def test_every_fires_on_multiples_and_never_for_zero():
  assert [s for s in range(1, 13) if loop.every(s, 4)] == [4, 8, 12]
  assert not any(loop.every(s, 0) for s in range(1, 10))


def test_summarize_averages_the_interval_and_derives_rates():
  pending = [{"loss": np.float32(v), "mse": np.float32(v / 10), "lr": np.float32(lr)}
             for v, lr in ((1.0, 1e-4), (3.0, 1e-5))]
  out = loop.summarize(pending, step=12, first=10, seconds=4.0, batch_size=8)
  assert out["loss"] == 2.0 and math.isclose(out["mse"], 0.2, rel_tol=1e-6)
  assert math.isclose(out["lr"], 1e-5, rel_tol=1e-6)  # the latest, not the mean
  assert out["steps_per_s"] == 0.5 and out["images_per_s"] == 4.0


def test_non_finite_loss_raises_with_the_step_range():
  pending = [{"loss": np.float32(1.0), "lr": 0.0}, {"loss": np.float32("nan"), "lr": 0.0},
             {"loss": np.float32("inf"), "lr": 0.0}]
  with pytest.raises(FloatingPointError, match=r"non-finite loss in steps 101\.\.103 \(first at 102\)"):
    loop.summarize(pending, step=103, first=100, seconds=1.0, batch_size=2)


def test_writer_cuts_steps_after_the_resume_point_and_only_process_zero_writes(tmp_path):
  w = metrics_writer.MetricsWriter(str(tmp_path))
  for s in range(1, 6):
    w.write_scalars(s, {"loss": s * 1.5, "bpp/machine": np.float32(0.25)})
  w.close()
  with open(tmp_path / metrics_writer.JSONL, "a") as f:
    f.write('{"step": 6, "lo')  # a line cut by kill -9
  w = metrics_writer.MetricsWriter(str(tmp_path), resume_step=3)
  w.write_scalars(4, {"loss": 9.0})
  w.close()
  records = metrics_writer.read_scalars(str(tmp_path))
  assert [(r["step"], r["loss"]) for r in records] == [(1, 1.5), (2, 3.0), (3, 4.5), (4, 9.0)]
  assert records[0]["bpp/machine"] == 0.25
  assert list((tmp_path / "tensorboard").iterdir())  # event files written
  other = tmp_path / "other"
  metrics_writer.MetricsWriter(str(other), enabled=False).write_scalars(1, {"loss": 1.0})
  assert not other.exists()
