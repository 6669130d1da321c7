"""`icmh golden-check tcm` on the primary LIC-TCM golden set must PASS (every row)."""

import pytest

from icmh_jax.golden import tcm as golden_tcm


def _check(reference_dir, train):
  d = reference_dir / "tcm"
  report = golden_tcm.check(d / "tcm_golden.npz", d / "tcm_golden.json", train=train)
  failed = [(r.name, r.max_abs, r.rel, r.note) for r in report.rows if not r.passed]
  assert report.passed, failed
  return {r.name for r in report.rows}, report


def test_tcm_matches_golden_vectors(reference_dir):
  names, report = _check(reference_dir, train=False)
  # The check covered every part the set holds, not a subset.
  for must in ("cmp/y_symbols", "cmp/z_symbols", "cmp/y_indexes", "e2e/x_hat", "bpp_estimated",
               "tf/slice4/lrp", "unit/swatten_48_inter32/output", "cmp/x_hat"):
    assert must in names, must
  # cmp/x_hat is not in the npz: the set's omitted_arrays says how to derive it, and the row says so
  (x_hat_row,) = [r for r in report.rows if r.name == "cmp/x_hat"]
  assert "omitted by the set" in x_hat_row.note


@pytest.mark.slow  # the train-mode gradient compiles for a minute
def test_tcm_train_loss_and_gradients_match_golden_vectors(reference_dir):
  names, _ = _check(reference_dir, train=True)
  for must in ("train/loss", "train/bpp_loss", "train/grad_norms"):
    assert must in names, must
