"""`make study`, shortened: every table parses and every bpp is the bytes of a file it wrote."""

import csv
import json
import math

import pytest

from icmh_jax import study
from icmh_jax.evaluation import rd, tables


def test_plan_names_every_run_before_training(tmp_path):
  machine, machine_dir, todo = study.plan_runs(study.PLANS["full"], str(tmp_path))
  assert machine.system == "sa_icm" and machine.loss.lam == study.MACHINE_LAM
  assert machine.loss.mask == "edges"
  assert len(todo) == len(study.VARIANTS) * len(study.LAMS)
  for v, lam, workdir, cfg in todo:
    assert cfg.loss.lam == lam and cfg.data.batch_size == study.PLANS["full"]["batch"]
    if v.residual_context is not None:
      assert cfg.model.residual_context == v.residual_context
    if v.family != "tcm":
      assert cfg.model.num_slices_a == study.NA and cfg.base_checkpoint == machine_dir
    # The largest λ trains from scratch; the others start from its weights.
    first = lam == study.LAMS[0]
    assert (cfg.init_from == "") == first
    assert cfg.schedule.total_steps == study.PLANS["full"]["first_steps" if first else "next_steps"]


def test_the_code_runs_the_committed_protocol():
  """docs/study/protocol.md (pre-registered) and `study`'s constants say the same."""
  import pathlib
  text = (pathlib.Path(study.__file__).parents[1] / "docs/study/protocol.md").read_text()
  plan = study.PLANS["full"]
  machine = text.split("1. SA-ICM:")[1].split("\n2.")[0]
  assert f"{plan['machine_steps']} steps" in machine
  assert f"validation every {plan['machine_steps'] // plan['machine_evals']}" in machine
  assert f"for {plan['first_steps']} steps" in text and f"for {plan['next_steps']} steps" in text
  assert "λ ∈ {" + ", ".join(str(lam) for lam in study.LAMS) + "}" in text
  assert f"N_a = {study.NA}" in text and f"λ = {study.MACHINE_LAM}" in text
  assert f"{plan['crop']}² crops" in text and f"batch {plan['batch']}" in text
  assert f"at least {study.MIN_EDGE_PSNR:g} dB" in text and f"less than {study.FLAT_DB} dB" in text


def test_machine_criterion_compares_the_two_fifths_before_the_lr_drop():
  curve = ((100, 20.0), (400, 21.0), (500, 22.0), (600, 23.0), (700, 22.5), (800, 24.5),
           (900, 30.0), (1000, 31.0))
  records = [{"step": s, "val/psnr_masked": p} for s, p in curve]
  final, gain = study.machine_criterion(records, 1000)
  # (60 %, 80 %]: 700, 800 -> 23.5; (40 %, 60 %]: 500, 600 -> 22.5; after the drop is left out.
  assert final == 31.0 and gain == pytest.approx(1.0)
  assert all(math.isnan(v) for v in study.machine_criterion([{"step": 5, "loss": 1.0}], 10))


def test_verdict_needs_the_sign_and_the_margin():
  assert study.verdict(-2.0, "").startswith("**reproduced**")
  assert study.verdict(3.0, "").startswith("**not reproduced**")
  assert "no difference" in study.verdict(-0.2, "")
  assert study.verdict(math.nan, "curves do not overlap").startswith("**cannot be judged**")


@pytest.mark.slow  # 25 tiny runs of a few steps, each compiled, and their evaluation: ~50 min cold
def test_quick_study_tables_parse_and_every_bpp_is_the_bytes_of_its_file(tmp_path):
  assert study.main(["--out", str(tmp_path), "--quick"]) == 0
  for group in ("paper", "extension"):
    d = tmp_path / "eval" / group
    text = (d / "tables.md").read_text()
    for block in text.split("\n\n"):
      if "|" in block:
        header, rows = tables.parse_table(block)
        assert rows and all(len(r) == len(header) for r in rows)
    with open(d / "per_image.csv") as f:
      rows = list(csv.DictReader(f))
    n_images = len({r["image"] for r in rows})
    folders = sorted(p for p in (d / "bitstreams").iterdir())
    assert len(rows) == len(folders) * n_images == 4 * (4 if group == "paper" else 2)
    for i, r in enumerate(rows):
      path = folders[i // n_images] / rd.bitstream_name(r["image"])
      size = path.stat().st_size
      assert int(r["bytes_total"]) == size
      assert int(r["bytes_machine"]) + int(r["bytes_human"]) == size
      pixels = int(r["height"]) * int(r["width"])
      for layer in ("machine", "human", "total"):
        assert float(r[f"bpp_{layer}"]) == pytest.approx(8 * int(r[f"bytes_{layer}"]) / pixels,
                                                          rel=1e-9)
  summary = json.loads((tmp_path / "study.json").read_text())
  assert set(summary["results"]["bd"]) >= {"fr_icmh/psnr/bpp_human", "pr_vs_fr/psnr/bpp_human"}
  report = (tmp_path / "report.md").read_text()
  assert "--quick" in report and report.count("**") >= 14
  for png in ("training.png", "fig6_psnr.png", "fig6_ms_ssim.png"):
    assert (tmp_path / png).stat().st_size > 10_000


def test_side_by_side_section_reports_the_gap_of_a_compare_result():
  from icmh_jax.benchmarks import train_compare
  curves = lambda v: {"loss": [v, v], "bpp": [0.5, 0.5], "mse": [0.01, 0.01], "step_s": [2.0, 1.0],
                      "wall_s": 3.0}
  result = dict(config=dict(N=32, M=320, num_slices=5, batch=4, crop=256, lam=0.013, lr=1e-4,
                            aux_lr=1e-3, clip_norm=1.0, steps=2, window=2, tolerance=0.02, seed=0,
                            noise="shared", control_seed=0),
                machine={"cpu": "test", "usable_cores": 2}, same_batches=True,
                ours=curves(1.01), reference=curves(1.0),
                first_step={k: dict(ours=2.0, reference=2.0 + 2e-6, relative=-1e-6)
                            for k in train_compare.METRICS})
  result["gap"] = train_compare.gap(result["ours"], result["reference"], 2)
  text = "\n".join(study.side_by_side_section(result))
  assert "same digests on both sides: yes" in text
  assert "The reference adds the training noise our step drew" in text
  assert "step 1 (same weights and batch and noise):" in text
  assert "loss ours 2  reference 2.000002  -1.00e-06" in text
  assert "loss ours 1.01  reference 1  +1.00%  within" in text
  assert "train_compare.png" in text
  assert "noise of its own (torch seed" not in text
  result["control"] = curves(0.97)
  result["control_gap"] = train_compare.gap(result["control"], result["reference"], 2)
  text = "\n".join(study.side_by_side_section(result))
  assert "noise of its own (torch seed 0)" in text
  assert "loss own noise 0.97  reference 1  -3.00%  OUTSIDE" in text
  result["config"].update(noise="own", control_seed=1)
  text = "\n".join(study.side_by_side_section(result))
  assert "The noise draws differ" in text and "noise of its own (torch seed 1)" in text
  assert "Not run" in "\n".join(study.side_by_side_section(None))
  assert study.side_by_side("unused", None, quick=False) is None
