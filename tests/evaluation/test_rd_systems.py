"""End to end: tiny random-weight ICMH systems saved as checkpoints, evaluated on two bundled
photos through `rd.run_from_config` (the evaluate.py path) with real `.icmh` files.

Slow: building and compiling two tiny systems (init, forward, compress, decompress) takes 2-5
minutes on the 2-core CI box; the bookkeeping itself is covered fast by test_rd_fake.py.
"""

import csv
import json

import numpy as np
import pytest

pytest.importorskip("icmh_jax.models.scalable")
pytest.importorskip("icmh_jax.entropy.container")

from configs import icmh_ff as icmh_ff_config  # noqa: E402
from configs.eval import paper as eval_config  # noqa: E402
from icmh_jax.evaluation import images as images_lib  # noqa: E402
from icmh_jax.evaluation import rd, tables  # noqa: E402
from icmh_jax.models import registry  # noqa: E402
from icmh_jax.params_io import save_params  # noqa: E402

pytestmark = pytest.mark.slow

SYSTEMS = ("icmh_ff", "fr_icmh")
LAMS = (0.005, 0.05)
CROP = 64


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
  root = tmp_path_factory.mktemp("rd")
  model = dict(icmh_ff_config.get_config("tiny").model, num_slices_a=3, pad_multiple=64)
  for system in SYSTEMS:
    for k, lam in enumerate(LAMS):
      _, params = registry.load_system(name=system, model_config=model, seed=k)
      save_params(root / "runs" / f"{system}_{k}", params,
                  {"system": system, "model": model, "loss": {"lam": lam}})
  config = eval_config.get_config(f"tiny,crop={CROP}")
  config.data.data_dir = str(root / "data")
  summary = rd.run_from_config(config, [str(root / "runs")], "bundled", str(root / "out"))
  with open(root / "out" / "per_image.csv") as f:
    rows = list(csv.DictReader(f))
  return root, summary, rows


def test_every_reported_bpp_is_eight_times_file_bytes_over_pixels(evaluated):
  root, summary, rows = evaluated
  assert len(rows) == len(SYSTEMS) * len(LAMS) * 2
  assert sorted({(r["system"], float(r["lam"])) for r in rows}) == sorted(
      (s, lam) for s in SYSTEMS for lam in LAMS)
  images = images_lib.load_images("bundled", data_dir=str(root / "data"), crop=CROP, limit=2)
  for k, run in enumerate(summary["runs"]):  # runs are in entry order, bitstreams/<k>_<system>
    for image in images:
      data = (root / "out" / "bitstreams" / f"{k:03d}_{run['system']}" /
              (image.name.replace("/", "_") + ".icmh")).read_bytes()
      (row,) = [r for r in rows if r["label"] == run["label"] and r["image"] == image.name]
      pixels = image.x.shape[0] * image.x.shape[1]
      b_m, b_h = int(row["bytes_machine"]), int(row["bytes_human"])
      assert b_m + b_h == len(data) == int(row["bytes_total"])
      assert float(row["bpp_total"]) == pytest.approx(8 * len(data) / pixels, rel=1e-12)
      assert float(row["bpp_machine"]) == pytest.approx(8 * b_m / pixels, rel=1e-12)
      assert float(row["bpp_human"]) == pytest.approx(8 * b_h / pixels, rel=1e-12)
      # Real bits track the eval forward's estimate (≤ 0.5 % + 64 bytes per layer + framing).
      for layer, nbytes in (("machine", b_m), ("human", b_h)):
        est_bytes = float(row[f"est_bpp_{layer}"]) * pixels / 8
        assert nbytes <= est_bytes * 1.005 + 64 + 80, (layer, nbytes, est_bytes)
      assert float(row["decode_err"]) <= 1e-4  # decoded human image = clamped eval forward


def test_psnr_in_the_table_is_the_psnr_of_the_decoded_file(evaluated):
  root, _, rows = evaluated
  row = rows[0]
  images = images_lib.load_images("bundled", data_dir=str(root / "data"), crop=CROP, limit=1)
  data = (root / "out" / "bitstreams" / f"000_{row['system']}" /
          (images[0].name.replace("/", "_") + ".icmh")).read_bytes()
  (entry,) = rd.load_entries([row["label"]])
  x_hat = entry.system.decompress(entry.params, data, layer="human")
  mse = np.mean((images[0].x.astype(np.float64) - x_hat) ** 2)
  assert float(row["psnr"]) == pytest.approx(10 * np.log10(1 / mse), abs=1e-3)
  assert float(row["lam"]) == entry.lam and row["image"] == images[0].name


def test_summary_tables_and_plots_are_written(evaluated):
  root, summary, _ = evaluated
  on_disk = json.loads((root / "out" / "summary.json").read_text())
  assert len(on_disk["runs"]) == len(SYSTEMS) * len(LAMS) and on_disk["method"] == "pchip"
  text = (root / "out" / "tables.md").read_text()
  header, rows = tables.parse_table(text)
  assert header == ["System", "N_a = 3", "N_a = 4", "N_a = 5"]
  want = summary["bd_rate"]["psnr/human"]["fr_icmh/na3"]
  assert tables.parse_percent(rows[1][1]) == pytest.approx(want, abs=0.006)
  _, rows = tables.parse_table(text[text.index("**Table II**"):])
  counts = {s: registry.get_system(s, dict(summary_model(root), num_slices_a=3)).param_counts()
            for s in SYSTEMS}
  assert rows[0][1].endswith(f"({counts['icmh_ff']['additional']:,})")
  for name in ("rd_systems_psnr.png", "rd_over_na_psnr.png"):
    assert (root / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def summary_model(root):
  from icmh_jax.params_io import read_meta
  return read_meta(sorted((root / "runs").iterdir())[0])["model"]
