"""Params directories: exact round trip, workdir resolution, clear errors on mismatch."""

import os

import jax
import numpy as np
import pytest

from icmh_jax.errors import CheckpointError
from icmh_jax import params_io


def _params(seed=0):
  rng = np.random.default_rng(seed)
  return {"base": {"g_a": {"kernel": rng.normal(size=(3, 3, 3, 8)).astype(np.float32),
                           "bias": rng.normal(size=(8,)).astype(np.float32)}},
          "additional": {"entropy_bottleneck": {"quantiles": rng.normal(size=(8, 1, 3)).astype(np.float32)}}}


META = {"system": "tcm", "model": {"N": 8, "M": 16, "num_slices": 2}}


def test_round_trip_restores_identical_arrays_and_meta(tmp_path):
  params = _params()
  params_io.save_params(tmp_path / "p", params, META)
  got, meta = params_io.load_params(tmp_path / "p", expect_meta={"system": "tcm", "model": {"N": 8}},
                                    like=params)
  assert meta == META
  assert jax.tree.structure(got) == jax.tree.structure(params)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)
    assert a.dtype == b.dtype


def test_workdir_path_loads_the_latest_step(tmp_path):
  root = tmp_path / "run" / params_io.CHECKPOINTS
  params_io.save_params(root / "10", _params(1), META)
  params_io.save_params(root / "200", _params(2), META)
  os.makedirs(root / "300.orbax-checkpoint-tmp-1")  # an unfinished save is skipped
  got, _ = params_io.load_params(tmp_path / "run")
  np.testing.assert_array_equal(got["base"]["g_a"]["bias"], _params(2)["base"]["g_a"]["bias"])


def test_missing_path_raises_checkpoint_error_naming_it(tmp_path):
  with pytest.raises(CheckpointError, match="nope.*does not exist"):
    params_io.load_params(tmp_path / "nope")
  (tmp_path / "empty").mkdir()
  with pytest.raises(CheckpointError, match="empty"):
    params_io.load_params(tmp_path / "empty")


def test_key_and_shape_mismatch_lists_missing_unexpected_and_shapes(tmp_path):
  params_io.save_params(tmp_path / "p", _params(), META)
  like = _params()
  del like["base"]["g_a"]["bias"]
  like["base"]["g_s"] = {"kernel": np.zeros((1,))}
  like["base"]["g_a"]["kernel"] = np.zeros((3, 3, 3, 16), np.float32)
  with pytest.raises(CheckpointError) as e:
    params_io.load_params(tmp_path / "p", like=like)
  msg = str(e.value)
  assert "missing keys (1): base/g_s/kernel" in msg
  assert "unexpected keys (1): base/g_a/bias" in msg
  assert "base/g_a/kernel: checkpoint (3, 3, 3, 8) vs expected (3, 3, 3, 16)" in msg


def test_meta_mismatch_names_the_field_and_both_values(tmp_path):
  params_io.save_params(tmp_path / "p", _params(), META)
  with pytest.raises(CheckpointError, match=r"model.N=8 but expected 128"):
    params_io.load_params(tmp_path / "p", expect_meta={"model": {"N": 128}})


def test_damaged_params_raise_checkpoint_error(tmp_path):
  params_io.save_params(tmp_path / "p", _params(), META)
  for name in os.listdir(tmp_path / "p" / "params"):
    if name.endswith("METADATA") or name.startswith("manifest"):
      os.remove(tmp_path / "p" / "params" / name)
  with pytest.raises(CheckpointError, match="unreadable"):
    params_io.load_params(tmp_path / "p")


def test_long_key_lists_are_cut_with_a_count(tmp_path):
  params_io.save_params(tmp_path / "p", {f"k{i:02d}": np.zeros(1) for i in range(30)}, META)
  with pytest.raises(CheckpointError, match=r"unexpected keys \(30\): k00, .*k11, \.\.\. and 18 more"):
    params_io.load_params(tmp_path / "p", like={"other": np.zeros(1)})


@pytest.mark.parametrize("change", ["extra_key", "missing_key", "shape"])
def test_a_checkpoint_differing_by_one_thing_is_refused_with_what_differs(tmp_path, change):
  # A single difference is what restoring straight into `like` (no metadata read) could miss.
  params_io.save_params(tmp_path / "p", _params(), META)
  like = _params()
  if change == "extra_key":
    del like["base"]["g_a"]["bias"]
    expected = "unexpected keys (1): base/g_a/bias"
  elif change == "missing_key":
    like["base"]["g_a"]["extra"] = np.zeros((2,), np.float32)
    expected = "missing keys (1): base/g_a/extra"
  else:
    like["base"]["g_a"]["kernel"] = np.zeros((3, 3, 3, 16), np.float32)
    expected = "base/g_a/kernel: checkpoint (3, 3, 3, 8) vs expected (3, 3, 3, 16)"
  with pytest.raises(CheckpointError) as e:
    params_io.load_params(tmp_path / "p", like=like)
  assert expected in str(e.value)


def test_loading_against_the_expected_tree_gives_the_saved_values(tmp_path):
  params_io.save_params(tmp_path / "p", _params(), META)
  like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), _params())
  params, _ = params_io.load_params(tmp_path / "p", like=like)
  jax.tree.map(np.testing.assert_array_equal, params, _params())
  assert all(isinstance(a, np.ndarray) for a in jax.tree.leaves(params))


def test_a_copy_beside_the_cache_gives_the_saved_values_and_follows_the_files(tmp_path,
                                                                               monkeypatch):
  from icmh_jax import trace_cache
  params = _params()
  path = params_io.save_params(str(tmp_path / "ck"), params, {"system": "tcm", "model": {}})
  like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)
  monkeypatch.setattr(trace_cache, "cache_dir", lambda: str(tmp_path / "cache"))
  first, _ = params_io.load_params(path, like=like)  # read by Orbax, copy written
  (copy,) = (tmp_path / "cache" / "icmh_params").iterdir()
  import orbax.checkpoint as ocp
  monkeypatch.setattr(ocp, "PyTreeCheckpointer", lambda: pytest.fail("read by Orbax again"))
  second, _ = params_io.load_params(path, like=like)
  jax.tree.map(np.testing.assert_array_equal, second, params)
  jax.tree.map(np.testing.assert_array_equal, first, params)
  monkeypatch.undo()
  monkeypatch.setattr(trace_cache, "cache_dir", lambda: str(tmp_path / "cache"))
  changed = jax.tree.map(lambda a: a + 1, params)  # rewritten in place: another key
  params_io.save_params(path, changed, {"system": "tcm", "model": {}})
  third, _ = params_io.load_params(path, like=like)
  jax.tree.map(np.testing.assert_array_equal, third, changed)
  copy.write_bytes(b"damaged")
  assert trace_cache.read_arrays(copy) is None
