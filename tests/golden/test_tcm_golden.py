"""`icmh golden-check tcm` on the primary LIC-TCM golden set must PASS (every row)."""

from icmh_jax.golden import tcm as golden_tcm


def test_tcm_matches_golden_vectors(reference_dir):
  d = reference_dir / "tcm"
  report = golden_tcm.check(d / "tcm_golden.npz", d / "tcm_golden.json")
  failed = [(r.name, r.max_abs, r.rel, r.note) for r in report.rows if not r.passed]
  assert report.passed, failed
  names = {r.name for r in report.rows}
  # The check covered every part the set holds, not a subset.
  for must in ("cmp/y_symbols", "cmp/z_symbols", "cmp/y_indexes", "e2e/x_hat", "bpp_estimated",
               "train/loss", "train/grad_norms", "tf/slice4/lrp", "unit/swatten_48_inter32/output",
               "cmp/x_hat"):
    assert must in names, must
  # cmp/x_hat is not in the npz: the set's omitted_arrays says how to derive it, and the row says so
  (x_hat_row,) = [r for r in report.rows if r.name == "cmp/x_hat"]
  assert "omitted by the set" in x_hat_row.note
