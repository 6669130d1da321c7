"""evaluate.py entry point: usage errors exit non-zero with a clear message (the full run is
tested through `rd.run_from_config` in tests/evaluation/test_rd_systems.py)."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(*args):
  return subprocess.run([sys.executable, str(ROOT / "evaluate.py"), *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


def test_missing_checkpoints_flag_is_a_usage_error():
  res = _run("--data", "bundled")
  assert res.returncode != 0 and "--checkpoints" in res.stderr


def test_unknown_data_exits_1_with_the_offending_value(tmp_path):
  res = _run("--checkpoints", str(tmp_path), "--data", str(tmp_path / "nowhere"),
             "--out", str(tmp_path / "out"))
  assert res.returncode == 1
  want = f"--data '{tmp_path / 'nowhere'}' is neither a folder nor one of bundled, coco_val"
  assert want in res.stderr


def test_unknown_config_knob_is_refused(tmp_path):
  res = _run("--config", "configs/eval/paper.py:methd=pchip", "--checkpoints", str(tmp_path))
  assert res.returncode != 0 and "unknown config knob 'methd'" in res.stderr
