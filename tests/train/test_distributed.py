"""Two jax.distributed processes on localhost train the toy like one process does."""

import json
import math
import pathlib
import socket
import subprocess
import sys

import pytest

from icmh_jax.train import metrics_writer

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(pid, n, port, workdir, data_dir):
  args = [sys.executable, str(HERE / "distributed_script.py"), str(pid), str(n), str(port),
          str(workdir), str(data_dir), "6"]
  return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc):
  out, err = proc.communicate(timeout=900)
  assert proc.returncode == 0, err[-3000:]
  return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_processes_agree_with_each_other_and_with_one_process(tmp_path):
  data_dir = tmp_path / "data"
  single = _result(_launch(0, 1, 0, tmp_path / "one", data_dir))
  port = _free_port()
  procs = [_launch(p, 2, port, tmp_path / "two", data_dir) for p in range(2)]
  results = [_result(p) for p in procs]
  assert [r["process"] for r in results] == [0, 1] and results[0]["count"] == 2
  assert results[0]["devices"] == 2
  same = lambda m: {k: v for k, v in m.items() if not k.endswith("_per_s")}  # timings differ
  assert same(results[0]["metrics"]) == same(results[1]["metrics"])  # replicated, pmean'd
  # The two processes together feed the same global batches as one process, so the losses match.
  one = {r["step"]: r["loss"] for r in metrics_writer.read_scalars(str(tmp_path / "one")) if "loss" in r}
  two = {r["step"]: r["loss"] for r in metrics_writer.read_scalars(str(tmp_path / "two")) if "loss" in r}
  assert sorted(two) == list(range(1, 7))
  for s in one:
    assert math.isclose(one[s], two[s], rel_tol=1e-5), (s, one[s], two[s])
