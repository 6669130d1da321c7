"""train_and_evaluate end to end on the bundled photos: kill -9 and resume, logs and checkpoints."""

import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from icmh_jax import params_io
from icmh_jax.train import metrics_writer

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCRIPT = HERE / "toy_run_script.py"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("data"))


def _run(workdir, data_dir, total, kill_at=None):
  args = [sys.executable, str(SCRIPT), str(workdir), data_dir, str(total)]
  args += [str(kill_at)] if kill_at is not None else []
  return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)


def _losses(workdir):
  return {r["step"]: r["loss"] for r in metrics_writer.read_scalars(str(workdir)) if "loss" in r}


@pytest.mark.slow  # two toy runs in subprocesses, 40 s
def test_resume_after_kill_repeats_the_losses_and_training_lowers_val_loss(tmp_path, data_dir):
  ref = _run(tmp_path / "ref", data_dir, 24)
  assert ref.returncode == 0, ref.stderr[-3000:]
  killed = _run(tmp_path / "run", data_dir, 24, kill_at=8)
  assert killed.returncode == -9, killed.stderr[-3000:]
  assert max(_losses(tmp_path / "run")) == 8  # it died after logging step 8 (checkpoint at 6)
  resumed = _run(tmp_path / "run", data_dir, 24)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  want, got = _losses(tmp_path / "ref"), _losses(tmp_path / "run")
  assert sorted(got) == list(range(1, 25))  # steps 7 and 8 were redone, not logged twice
  for s in range(1, 25):
    assert math.isclose(got[s], want[s], rel_tol=1e-6), (s, got[s], want[s])
  # The final params are the same too, and the workdir reads back through load_params.
  p_ref, meta = params_io.load_params(tmp_path / "ref")
  p_run, _ = params_io.load_params(tmp_path / "run")
  assert meta["system"] == "sa_icm" and meta["model"]["slice_width"] == 16
  for a, b in zip(_leaves(p_ref), _leaves(p_run)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  # keep_ckpts=2 newest (21, 24), plus the best by validation loss among the checkpoints that
  # had one (12 and 24: every 3rd step that is also an eval step).
  steps = params_io.step_dirs(str(tmp_path / "ref" / params_io.CHECKPOINTS))
  assert steps[-2:] == [21, 24] and set(steps) <= {12, 21, 24}
  records = metrics_writer.read_scalars(str(tmp_path / "ref"))
  val = [r for r in records if "val/loss" in r]
  assert [r["step"] for r in val] == [4, 8, 12, 16, 20, 24]
  # Training on the bundled photos lowers the (fixed-batch) validation loss.
  assert val[-1]["val/loss"] < 0.9 * val[0]["val/loss"], [r["val/loss"] for r in val]
  assert all(k in records[0] for k in ("loss", "bpp/machine", "mse", "psnr", "aux", "lr",
                                       "steps_per_s", "images_per_s"))


def _leaves(tree):
  import jax
  return jax.tree.leaves(tree)
