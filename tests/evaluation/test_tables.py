"""Table I / Table II layout (parsed back) and the BD-rate numbers they print."""

import numpy as np
import pytest

from icmh_jax.evaluation import tables


def _runs(factors):
  """Synthetic run records: for each (system, na), total and human rates that are `factor` times
  ICMH-FF's at every PSNR (so every BD-rate is (factor - 1) * 100 % for both definitions)."""
  psnr = np.array([28.0, 30.0, 32.0, 34.0, 36.0])
  runs = []
  for (system, na), f in factors.items():
    human = f * 0.05 * 2 ** ((psnr - 28) / 3)
    for k, lam in enumerate((0.005, 0.01, 0.02, 0.03, 0.05)):
      runs.append(dict(system=system, na=na, lam=lam, bpp_human=human[k], bpp_total=2 * human[k],
                       psnr=psnr[k], ms_ssim=0.9 + 0.01 * k))
  return runs


FACTORS = {("icmh_ff", 3): 1.0, ("fr_icmh", 3): 0.95, ("pr_icmh", 3): 0.70,
           ("icmh_ff", 4): 1.0, ("fr_icmh", 4): 0.93, ("pr_icmh", 4): 0.74,
           ("icmh_ff", 5): 1.0, ("fr_icmh", 5): 0.90}


@pytest.mark.parametrize("rate", ["human", "total"])
@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_table_i_has_the_papers_layout_and_prints_the_analytic_bd_rates(rate, method):
  text = tables.table_i(_runs(FACTORS), rate=rate, method=method)
  assert f"fit: {method}" in text.splitlines()[0] and tables.RATE_NAMES[rate] in text
  header, rows = tables.parse_table(text)
  assert header == ["System", "N_a = 3", "N_a = 4", "N_a = 5"]
  assert [r[0] for r in rows] == ["ICMH-FF", "FR-ICMH", "PR-ICMH"]
  for row, system in zip(rows, tables.HUMAN_SYSTEMS):
    for cell, na in zip(row[1:], tables.NAS):
      paper = tables.PAPER_TABLE_I[system][na]
      assert cell.endswith(f"(paper {paper:+.2f} %)")
      if (system, na) in FACTORS:
        want = (FACTORS[system, na] - 1) * 100
        assert tables.parse_percent(cell) == pytest.approx(want, abs=0.01)
      else:
        assert cell.startswith("n/a")


def test_table_i_for_ms_ssim_has_no_paper_numbers():
  header, rows = tables.parse_table(tables.table_i(_runs(FACTORS), metric="ms_ssim"))
  assert "paper" not in " ".join(rows[1]) and rows[0][1] == "+0.00 %"


def test_missing_anchor_is_reported_as_n_a_with_a_note():
  runs = [r for r in _runs(FACTORS) if not (r["system"] == "icmh_ff" and r["na"] == 4)]
  text = tables.table_i(runs, paper={})
  _, rows = tables.parse_table(text)
  assert rows[1][2] == "n/a" and "FR-ICMH, N_a = 4: no icmh_ff curve at N_a=4" in text


def test_table_ii_layout_with_paper_row():
  counts = {"fr_icmh": {3: 58_723_412, 4: 67_015_828, 5: 76_568_148},
            "pr_icmh": {3: 56_364_116, 4: 65_836_180, 5: 76_568_148}}
  header, rows = tables.parse_table(tables.table_ii(counts))
  assert header == ["Additional model", "N_a = 3", "N_a = 4", "N_a = 5"]
  assert rows[0] == ["FR-ICMH (ours)", "58.72 M (58,723,412)", "67.02 M (67,015,828)",
                     "76.57 M (76,568,148)"]
  assert rows[1][1] == "56.36 M (56,364,116)"
  assert rows[2] == ["Paper (Table II)", "58.7 M", "67.0 M", "76.6 M"]


def test_parse_table_reads_only_the_first_table():
  text = "cap\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\n| c |\n| --- |\n| 3 |\n"
  assert tables.parse_table(text) == (["a", "b"], [["1", "2"]])


@pytest.mark.slow
def test_paper_size_param_counts_equal_the_design_table():
  """FR-ICMH (= ICMH-FF) and PR-ICMH additional models at N = 128 (docs/design.md's measured counts)."""
  counts = tables.param_counts(("fr_icmh", "pr_icmh"))
  assert counts == {"fr_icmh": {3: 58_723_412, 4: 67_015_828, 5: 76_568_148},
                    "pr_icmh": {3: 56_364_116, 4: 65_836_180, 5: 76_568_148}}
  _, rows = tables.parse_table(tables.table_ii(counts))
  assert [r[1].split(" M")[0] for r in rows] == ["58.72", "56.36", "58.7"]
