"""The coding functions kept as compiled executables beside the compilation cache
(`coding.call_method`, `trace_cache`): a new process loads them instead of tracing the networks,
and the files it writes and reads are the same to the bit."""

import subprocess
import sys

import numpy as np
import pytest
from tiny_model import TINY

from icmh_jax import trace_cache
from icmh_jax.models import coding, registry


def _image(h=64, w=96):
  rng = np.random.default_rng(3)
  smooth = np.cumsum(np.cumsum(rng.normal(size=(h, w, 3)), 0), 1)
  return ((smooth - smooth.min()) / np.ptp(smooth)).astype(np.float32)


@pytest.fixture(scope="module")
def fr_icmh():
  return registry.load_system(None, name="fr_icmh", model_config=TINY)[:2]


def test_executables_are_written_loaded_and_code_the_same_bits(fr_icmh, tmp_path, monkeypatch):
  system, params = fr_icmh
  x = _image()
  monkeypatch.setattr(trace_cache, "cache_dir", lambda: None)
  monkeypatch.setattr(coding, "_EXECUTABLES", {})
  data = system.compress(params, x)  # compiled in memory only
  decoded = system.decompress(params, data)

  monkeypatch.setattr(trace_cache, "cache_dir", lambda: str(tmp_path))
  monkeypatch.setattr(coding, "_EXECUTABLES", {})
  assert system.compress(params, x) == data
  entries = sorted((tmp_path / "icmh_executable").iterdir())
  # FR-ICMH: the machine codec's analysis, hyper and 2 slices, the additional codec's, synthesis
  assert len(entries) >= 10

  # Loading them is a new process's work (the test below): in this one they are alive already.
  for entry in entries:  # damaged entries are compiled again and rewritten
    entry.write_bytes(b"damaged")
  monkeypatch.setattr(coding, "_EXECUTABLES", {})
  assert system.compress(params, x) == data
  assert all(entry.read_bytes() != b"damaged" for entry in entries)


_PROCESS = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
from tiny_model import TINY
from icmh_jax import compilation_cache
compilation_cache.enable()
from icmh_jax.models import coding, registry
loaded = []
real = coding.serialize_executable.deserialize_and_load
coding.serialize_executable.deserialize_and_load = lambda *a: loaded.append(1) or real(*a)
system, params = registry.load_system(None, name="fr_icmh", model_config=TINY)[:2]
rng = np.random.default_rng(3)
smooth = np.cumsum(np.cumsum(rng.normal(size=(64, 96, 3)), 0), 1)
x = ((smooth - smooth.min()) / np.ptp(smooth)).astype(np.float32)
data = system.compress(params, x)
np.save(sys.argv[1], system.decompress(params, data))
open(sys.argv[2], "wb").write(data)
print("loaded", len(loaded))
"""


def test_a_new_process_loads_both_codecs_executables_and_decodes_the_same(tmp_path):
  """FR-ICMH runs two TCMs whose methods share names: loaded side by side in one process, XLA's
  CPU runtime once failed to find their kernels ("concatenate.1_kernel not found")."""
  import os
  script = _PROCESS.format(tests=str(pathlib_tests()))
  env = dict(os.environ, ICMH_COMPILATION_CACHE_DIR=str(tmp_path / "cache"))
  env.pop("ICMH_NO_COMPILATION_CACHE", None)
  outs = []
  for run in range(2):
    files = tmp_path / f"x{run}.npy", tmp_path / f"x{run}.icmh"
    out = subprocess.run([sys.executable, "-c", script, *map(str, files)], env=env, check=True,
                         capture_output=True, text=True, timeout=900).stdout
    outs.append(int(out.split("loaded")[-1]))
  assert outs[0] == 0 and outs[1] >= 10  # the second process compiled nothing
  assert (tmp_path / "x0.icmh").read_bytes() == (tmp_path / "x1.icmh").read_bytes()
  np.testing.assert_array_equal(np.load(tmp_path / "x0.npy"), np.load(tmp_path / "x1.npy"))


def pathlib_tests():
  import pathlib
  return pathlib.Path(__file__).resolve().parents[1]
