"""The end-to-end demo: re-run bookkeeping; a shortened demo whose report's tables
parse and whose every bpp is real bytes."""

import csv
import glob
import json
import os

import numpy as np
import pytest

from icmh_jax import demo, runs
from icmh_jax.evaluation import tables
from icmh_jax.train import loop


def test_reruns_reuse_only_finished_runs_of_the_same_config(tmp_path, monkeypatch):
  trained = []

  def fake_train(config, workdir):  # writes the step directory a finished run leaves
    trained.append(workdir)
    steps = int(config.schedule.total_steps)
    os.makedirs(os.path.join(workdir, "checkpoints", str(steps), "params"))

  monkeypatch.setattr(loop, "train_and_evaluate", fake_train)
  base = runs.load_config("sa_icm", "tiny", **{"schedule.total_steps": 5})
  cfg = runs.load_config("fr_icmh", "tiny", **{"schedule.total_steps": 5})
  wd, base_wd = str(tmp_path / "fr"), str(tmp_path / "sa")
  assert demo.train(base, base_wd, "sa")[1] is False
  assert demo.train(cfg, wd, "fr", base=base)[1] is False
  assert demo.train(base, base_wd, "sa")[1] is True
  assert demo.train(cfg, wd, "fr", base=base)[1] is True
  assert len(trained) == 2
  # How the step is computed (remat) is not what it trains, nor is a key older stamps lack.
  stamp = os.path.join(wd, "run_config.json")
  with open(stamp) as f:
    old_stamp = json.load(f)
  for key in runs.EXECUTION_ONLY:
    old_stamp["config"].pop(key, None)
  with open(stamp, "w") as f:
    json.dump(old_stamp, f)
  remat = runs.load_config("fr_icmh", "tiny", **{"schedule.total_steps": 5, "remat": True,
                                                 "remat_scope": "transformer"})
  assert demo.train(remat, wd, "fr", base=base)[1] is True
  assert len(trained) == 2
  # Another λ, or the same run over an SA-ICM with another mask source, trains again.
  other_lam = runs.load_config("fr_icmh", "tiny,lam=0.05", **{"schedule.total_steps": 5})
  assert demo.train(other_lam, wd, "fr", base=base)[1] is False
  other_base = runs.load_config("sa_icm", "tiny", **{"schedule.total_steps": 5,
                                                     "data.mask_source": "sam"})
  assert demo.train(other_lam, wd, "fr", base=other_base)[1] is False
  assert len(trained) == 4
  # An unfinished run of the same config is resumed in place, not wiped.
  marker = tmp_path / "fr" / "checkpoints" / "2"
  os.rename(tmp_path / "fr" / "checkpoints" / "5", marker)
  assert demo.train(other_lam, wd, "fr", base=other_base)[1] is False
  assert marker.is_dir() and len(trained) == 5


def test_a_fine_tune_trains_again_when_the_run_it_starts_from_changed(tmp_path, monkeypatch):
  trained = []

  def fake_train(config, workdir):
    trained.append(workdir)
    os.makedirs(os.path.join(workdir, "checkpoints", str(int(config.schedule.total_steps)),
                             "params"))

  monkeypatch.setattr(loop, "train_and_evaluate", fake_train)
  first_wd, tune_wd = str(tmp_path / "lam0.05"), str(tmp_path / "lam0.02")
  tune = runs.load_config("tcm", "tiny,lam=0.02", **{"schedule.total_steps": 3,
                                                     "init_from": first_wd})
  for steps in (5, 5, 7):  # the first run retrained longer at the same path (a new protocol)
    first = runs.load_config("tcm", "tiny,lam=0.05", **{"schedule.total_steps": steps})
    runs.train(first, first_wd, "first")
    runs.train(tune, tune_wd, "tune")
  assert trained == [first_wd, tune_wd, first_wd, tune_wd]


def test_a_new_system_releases_the_previous_systems_compiled_steps(tmp_path, monkeypatch):
  from icmh_jax.train import step
  released = []
  monkeypatch.setattr(loop, "train_and_evaluate", lambda config, workdir: None)
  monkeypatch.setattr(step, "release_compiled", lambda: released.append(1))
  monkeypatch.setattr(runs, "_last_system", [None])
  fr = [runs.load_config("fr_icmh", f"tiny,lam={lam}") for lam in (0.05, 0.02)]
  runs.train(fr[0], str(tmp_path / "a"), "fr")
  runs.train(fr[1], str(tmp_path / "b"), "fr")  # another λ of the same system: kept
  assert released == []
  runs.train(runs.load_config("pr_icmh", "tiny"), str(tmp_path / "c"), "pr")
  assert released == [1]
  ctx = runs.load_config("fr_icmh", "tiny", **{"model.residual_context": "machine"})
  runs.train(ctx, str(tmp_path / "d"), "fr+ctx")  # same family, another model: released
  assert released == [1, 1]


@pytest.mark.slow
def test_short_demo_report_tables_parse_and_bpp_equal_file_bytes(tmp_path):
  out = str(tmp_path / "demo_out")
  assert demo.main(["--out", out, "--steps", "3", "--lams", "0.01,0.05", "--images", "1"]) == 0
  for name in ("report.md", "rd.png", "machine.png", "human.png", "side_by_side.png",
               "edges.png", "example.icmh"):
    assert os.path.getsize(os.path.join(out, name)) > 0, name
  report = open(os.path.join(out, "report.md")).read()
  section = report.split("## RD points")[1]
  header, rows = tables.parse_table(section)
  assert header[:3] == ["system", "N_a", "λ"] and len(rows) == 6  # 3 systems x 2 λ
  with open(os.path.join(out, "eval", "per_image.csv")) as f:
    per_image = list(csv.DictReader(f))
  for row, table_row in zip(per_image, rows):
    files = sorted(glob.glob(os.path.join(out, "eval", "bitstreams", f"*_{row['system']}", "*.icmh")))
    pixels = int(row["height"]) * int(row["width"])
    assert float(row["bpp_total"]) == pytest.approx(8 * int(row["bytes_total"]) / pixels, rel=1e-12)
    assert any(os.path.getsize(p) == int(row["bytes_total"]) for p in files)
    assert float(table_row[5]) == pytest.approx(float(row["bpp_total"]), abs=1e-4)  # 1 image: mean
  # Table I / II sections parse too.
  for title in ("BD-rate", "Parameters"):
    assert title in report
  tables.parse_table(report.split("## Tables")[1])
  example = json.load(open(os.path.join(out, "demo.json")))["example"]
  size = os.path.getsize(example["file"])
  assert example["bytes"] == size
  h, w = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(
      os.path.join(out, "human.png"))).shape[:2]
  assert example["bpp"]["total"] == pytest.approx(8 * size / (h * w))
  # A re-run reuses every finished training run.
  assert demo.main(["--out", out, "--steps", "3", "--lams", "0.01,0.05", "--images", "1"]) == 0
  runs = json.load(open(os.path.join(out, "demo.json")))["runs"]
  assert all(r["reused"] for r in runs)
  assert "reused" in open(os.path.join(out, "report.md")).read()


def _summary(bd, points):
  runs = [dict(system=s, bpp_human=r, psnr=q) for s, pts in points.items() for r, q in pts]
  return {"bd_rate": {"psnr/human": {f"{s}/na3": v for s, v in bd.items()}}, "runs": runs}


def test_ordering_uses_bd_rate_when_it_exists_and_point_dominance_otherwise():
  ff = [(0.20, 30.0), (0.40, 32.0)]
  held, text = demo.ordering(_summary({"icmh_ff": 0.0, "fr_icmh": -3.0, "pr_icmh": -25.0}, {}))
  assert held is True and "-3.00 %" in text and "-25.00 %" in text
  assert demo.ordering(_summary({"icmh_ff": 0.0, "fr_icmh": -3.0, "pr_icmh": 1.0}, {}))[0] is False
  # No BD-rate (NaN / None): decided by dominance of the points.
  no_bd = {"icmh_ff": 0.0, "fr_icmh": None, "pr_icmh": float("nan")}
  better = {"icmh_ff": ff, "fr_icmh": [(0.19, 30.5), (0.39, 32.5)],
            "pr_icmh": [(0.10, 33.0)]}
  held, text = demo.ordering(_summary(no_bd, better))
  assert held is True and "FR-ICMH vs ICMH-FF: better" in text
  worse = dict(better, fr_icmh=[(0.5, 29.0)])
  assert demo.ordering(_summary(no_bd, worse))[0] is False
  crossing = dict(better, fr_icmh=[(0.1, 29.0), (0.6, 34.0)])
  held, text = demo.ordering(_summary(no_bd, crossing))
  assert held is None and "FR-ICMH vs ICMH-FF: mixed" in text and "could not be decided" in text


def test_dominance_needs_every_point_of_the_other_curve_matched_or_beaten():
  a = [(0.1, 30.0), (0.3, 33.0)]
  assert demo.dominance([(0.1, 30.0), (0.3, 33.5)], a) == "better"
  assert demo.dominance(a, [(0.1, 30.0), (0.3, 33.5)]) == "worse"
  assert demo.dominance(a, a) == "mixed"  # equal curves: neither is better
  assert demo.dominance([(0.05, 31.0)], a) == "mixed"  # never reaches 33 dB


def test_bad_arguments_fail_with_one_line_before_any_training(tmp_path, capsys):
  out = str(tmp_path / "out")
  with pytest.raises(SystemExit) as e:
    demo.main(["--out", out, "--lams", "0.01,x"])
  assert e.value.code == 2 and "comma-separated numbers" in capsys.readouterr().err
  assert demo.main(["--out", out, "--na", "7"]) == 1
  assert "demo: error: config knob na=7 is not allowed" in capsys.readouterr().err
  assert not os.path.exists(os.path.join(out, "runs"))
