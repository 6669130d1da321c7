"""The shortened end-to-end demo (issue 9): the report's tables parse and every bpp is real bytes."""

import csv
import glob
import json
import os

import numpy as np
import pytest

from icmh_jax import demo
from icmh_jax.evaluation import tables


@pytest.mark.slow
def test_short_demo_report_tables_parse_and_bpp_equal_file_bytes(tmp_path):
  out = str(tmp_path / "demo_out")
  assert demo.main(["--out", out, "--steps", "3", "--lams", "0.01,0.05", "--images", "1"]) == 0
  for name in ("report.md", "rd.png", "machine.png", "human.png", "side_by_side.png",
               "example.icmh"):
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
