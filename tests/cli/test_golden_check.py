"""`icmh golden-check` on sets that lack what the checker needs: one line and exit 1, never a
KeyError traceback; arrays a set omits on purpose are known (`omitted_arrays`)."""

import json
import shutil

import numpy as np
import pytest

from icmh_jax import cli
from icmh_jax.golden import sets


@pytest.fixture
def tcm_json_without_fwd_x(reference_dir, tmp_path):
  """The real TCM JSON beside an npz that holds none of its arrays."""
  shutil.copy(reference_dir / "tcm" / "tcm_golden.json", tmp_path / "cut.json")
  np.savez(tmp_path / "cut.npz", unrelated=np.zeros(1))
  return tmp_path / "cut.npz"


def test_golden_check_names_an_array_missing_from_the_set(tcm_json_without_fwd_x, capsys):
  assert cli.main(["golden-check", "tcm", str(tcm_json_without_fwd_x)]) == 1
  err = capsys.readouterr().err
  assert err.strip() == ("icmh golden-check: error: golden set cut.npz has no array 'fwd/x'; "
                         "it does not fit this checker")


@pytest.mark.parametrize("family,field", [("tcm", "model"), ("icmh_ff", "config"),
                                          ("sam", "weights")])
def test_golden_check_names_a_json_field_missing_from_the_set(tmp_path, capsys, family, field):
  (tmp_path / "empty.json").write_text(json.dumps({"omitted_arrays": {}}))
  np.savez(tmp_path / "empty.npz", x=np.zeros((1, 3, 64, 64), np.float32))
  assert cli.main(["golden-check", family, str(tmp_path / "empty.npz")]) == 1
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
  assert f"'{field}'" in err and "does not fit" in err


def test_golden_arrays_know_what_the_set_omits_and_why(tmp_path):
  np.savez(tmp_path / "s.npz", a=np.arange(3))
  (tmp_path / "s.json").write_text(json.dumps({"omitted_arrays": {"b": "equals a + 1"}}))
  arrays, meta = sets.load_set(tmp_path / "s.npz", tmp_path / "s.json")
  np.testing.assert_array_equal(arrays["a"], np.arange(3))
  assert "b" not in arrays and arrays.omitted("b") == "equals a + 1" and arrays.omitted("a") is None
  with pytest.raises(sets.GoldenSetError, match=r"omits array 'b' \(equals a \+ 1\)"):
    arrays["b"]
  with pytest.raises(sets.GoldenSetError, match="has no JSON field 'model'"):
    meta["model"]


def test_tcm_golden_json_lists_cmp_x_hat_as_omitted(reference_dir):
  """The case the tcm checker derives (its full run is tests/golden/test_tcm_golden.py)."""
  d = reference_dir / "tcm"
  arrays, _ = sets.load_set(d / "tcm_golden.npz", d / "tcm_golden.json")
  assert "cmp/x_hat" not in arrays and "clip(fwd/x_hat, 0, 1)" in arrays.omitted("cmp/x_hat")
