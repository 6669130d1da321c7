"""Shared test set-up: the reference material in tests/reference and a persistent XLA cache.

JAX's persistent compilation cache is switched on for the session in a directory under pytest's
cache (`.pytest_cache/`, created on demand, so a fresh clone works): the second run of the suite
reuses the compiled networks instead of compiling them again. `ICMH_TEST_NO_COMPILE_CACHE=1`
turns it off.
"""

import os
import pathlib
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference"


def pytest_configure(config):
  if os.environ.get("ICMH_TEST_NO_COMPILE_CACHE"):
    os.environ["ICMH_NO_COMPILATION_CACHE"] = "1"  # nor the one `icmh` and train.py turn on
    return
  cache = getattr(config, "cache", None)  # None under `-p no:cacheprovider`
  cache_dir = (cache.mkdir("jax_compilation_cache") if cache is not None else
               pathlib.Path(tempfile.gettempdir()) / "icmh_jax_test_compilation_cache")
  # Environment first, so the suite's subprocesses (sharding, determinism) share the cache too;
  # every compile is cached, however small or fast: the suite compiles many small programs.
  settings = {"jax_compilation_cache_dir": str(cache_dir),
              "jax_persistent_cache_min_compile_time_secs": 0,
              "jax_persistent_cache_min_entry_size_bytes": 0}
  for name, value in settings.items():
    os.environ[name.upper()] = str(value)
  import jax  # pylint: disable=import-outside-toplevel

  for name, value in settings.items():
    jax.config.update(name, value)


@pytest.fixture(scope="session")
def reference_dir() -> pathlib.Path:
  if not REFERENCE.is_dir():
    pytest.fail(f"reference material not found at {REFERENCE}")
  return REFERENCE
