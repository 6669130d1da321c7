"""`python train.py`: config errors fail before any work; a tiny real run writes a loadable workdir."""

import pathlib
import subprocess
import sys

import pytest

from icmh_jax import params_io
from icmh_jax.train import metrics_writer

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _train(*args, timeout=120):
  return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=timeout)


def test_unknown_knob_fails_naming_the_known_ones(tmp_path):
  out = _train("--config", "configs/fr_icmh.py:nb=3", "--workdir", str(tmp_path / "w"))
  assert out.returncode != 0
  assert "unknown config knob 'nb'; known: lam, na, tiny" in out.stderr
  assert not (tmp_path / "w").exists()


def test_misspelt_override_fails_on_the_locked_config(tmp_path):
  out = _train("--config", "configs/tcm.py", "--config.optim.lrr=1e-5", "--workdir",
               str(tmp_path / "w"))
  assert out.returncode != 0 and "lrr" in out.stderr
  assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_tiny_tcm_run_through_train_py_writes_metrics_and_checkpoint(tmp_path):
  work = tmp_path / "w"
  out = _train("--config", "configs/tcm.py:tiny", "--config.schedule.total_steps=3",
               "--config.data.crop=64", "--config.eval.compress_images=0",
               f"--config.data.dir={tmp_path / 'data'}", "--workdir", str(work), timeout=1800)
  assert out.returncode == 0, out.stderr[-3000:]
  steps = [r["step"] for r in metrics_writer.read_scalars(str(work)) if "loss" in r]
  assert steps == [3]  # log_every=10 in tiny: the last step is always logged
  params, meta = params_io.load_params(work)
  assert meta["system"] == "tcm" and meta["model"]["N_machine"] == 32 and set(params) == {"base"}
