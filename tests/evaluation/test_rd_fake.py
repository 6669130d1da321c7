"""rd.py bookkeeping on an honest fake system whose numbers are plain arithmetic.

The fake codes pixels, not latents, but through the real `.icmh` container: layer 0 holds the
image quantised to `levels` grey levels per channel (uint8), layer 1 the residual quantised with
step 1/`fine` (int8). Its eval forward reports likelihood 1/2 per padded machine sample and 1/4 per
human sample, so the estimated bpp is exact arithmetic. The real systems are tested end to end in
test_rd_systems.py.
"""

import csv
import json
import math

import numpy as np
import pytest

container = pytest.importorskip("icmh_jax.entropy.container")

from icmh_jax.evaluation import images as images_lib  # noqa: E402
from icmh_jax.evaluation import rd, tables  # noqa: E402
from icmh_jax.models.system import SystemOutput  # noqa: E402


class FakeSystem:
  """Pixel quantiser with the System API (compress/decompress/apply/param_counts)."""
  has_additional = True

  def __init__(self, name, na):
    self.name, self.config = name, {"pad_multiple": 16, "num_slices_a": na}

  @staticmethod
  def _machine(p, x):
    return np.round(x * (p["levels"] - 1)) / (p["levels"] - 1)

  @staticmethod
  def _human(p, x, x_m):
    return x_m + np.clip(np.round((x - x_m) * p["fine"]), -127, 127) / p["fine"]

  def compress(self, params, image):
    h, w = image.shape[:2]
    x_m = self._machine(params, image)
    q_m = np.round(x_m * (params["levels"] - 1)).astype(np.uint8)
    q_h = np.round((self._human(params, image, x_m) - x_m) * params["fine"]).astype(np.int8)
    header = container.Header(system=self.name, config_digest=container.config_digest(self.config),
                              height=h, width=w, pad=(0, 0, 0, 0))
    return container.write_container(header, {0: q_m.tobytes(), 1: q_h.tobytes()})

  def decompress(self, params, data, layer="human"):
    need = (0,) if layer == "machine" else (0, 1)
    header, layers = container.read_container(data, expect_system=self.name, need_layers=need)
    shape = (header.height, header.width, 3)
    x_m = np.frombuffer(layers[0], np.uint8).reshape(shape) / (params["levels"] - 1)
    if layer == "machine":
      return x_m.astype(np.float32)
    residual = np.frombuffer(layers[1], np.int8).reshape(shape) / params["fine"]
    return (x_m + residual).astype(np.float32)

  def apply(self, params, x, *, train=False):
    import jax.numpy as jnp
    x_m = jnp.round(x * (params["levels"] - 1)) / (params["levels"] - 1)
    x_hat = x_m + jnp.clip(jnp.round((x - x_m) * params["fine"]), -127, 127) / params["fine"]
    half, quarter = jnp.full(x.shape, 0.5), jnp.full(x.shape, 0.25)
    likelihoods = {"machine": {"y": half}, "human": {"y": quarter, "z": half[..., :1]}}
    return SystemOutput(x_hat=x_hat, x_hat_m=x_m, likelihoods=likelihoods)

  def param_counts(self):
    return {"base": 0, "additional": 2 * self.config["num_slices_a"]}


def _images():
  rng = np.random.default_rng(0)
  out = []
  for k, (h, w) in enumerate([(40, 50), (33, 48)]):
    x = np.clip(rng.normal(0.5, 0.2, (h, w, 3)), 0, 1).astype(np.float32)
    edges = rng.uniform(size=(h, w)) < 0.2
    out.append(images_lib.EvalImage(f"img/{k}", x, edges, "test"))
  return out


def _entries():
  entries = []
  for name, fine in (("icmh_ff", 1.0), ("fr_icmh", 1.3)):
    for k, levels in enumerate((3, 5, 9, 17)):
      params = {"levels": float(levels), "fine": float(round(fine * 8 * levels))}
      entries.append(rd.Entry(FakeSystem(name, 3), params, lam=0.01 * (k + 1), label=f"{name}{k}"))
  return entries


def test_rd_rows_are_real_file_sizes_and_exact_metrics(tmp_path):
  imgs, entries = _images(), _entries()
  summary = rd.evaluate_systems(entries, imgs, tmp_path, method="pchip", progress=False)
  with open(tmp_path / "per_image.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == len(entries) * len(imgs)
  for k, entry in enumerate(entries):
    for image in imgs:
      (row,) = [r for r in rows if r["label"] == entry.label and r["image"] == image.name]
      h, w = image.x.shape[:2]
      data = (tmp_path / "bitstreams" / f"{k:03d}_{entry.system.name}" /
              f"{image.name.replace('/', '_')}.icmh").read_bytes()
      b_m = int(row["bytes_machine"])
      assert int(row["bytes_total"]) == len(data) and b_m + int(row["bytes_human"]) == len(data)
      for layer, nbytes in (("machine", b_m), ("human", len(data) - b_m), ("total", len(data))):
        assert float(row[f"bpp_{layer}"]) == pytest.approx(8 * nbytes / (h * w), rel=1e-12)
      # The machine layer is the file's prefix: a file cut there decodes for machines.
      x_m = entry.system.decompress(entry.params, data[:b_m], layer="machine")
      x_hat = entry.system.decompress(entry.params, data)
      hp, wp = -(-h // 16) * 16, -(-w // 16) * 16
      assert float(row["est_bpp_machine"]) == pytest.approx(3 * hp * wp / (h * w), rel=1e-9)
      assert float(row["est_bpp_human"]) == pytest.approx((6 + 1) * hp * wp / (h * w), rel=1e-9)
      mse = np.mean((image.x.astype(np.float64) - x_hat) ** 2)
      assert float(row["psnr"]) == pytest.approx(10 * np.log10(1 / mse), abs=1e-3)
      m = image.edges
      mse_edge = np.mean((image.x[m].astype(np.float64) - x_m[m]) ** 2)
      assert float(row["psnr_m_edge"]) == pytest.approx(10 * np.log10(1 / mse_edge), abs=1e-3)
      assert math.isnan(float(row["ms_ssim"]))  # below MS-SSIM's 161-pixel minimum
      assert float(row["decode_err"]) < 1e-6  # the forward predicts the decoded image
  by_label = {r["label"]: r for r in summary["runs"]}
  for entry in entries:
    mine = [float(r["bpp_total"]) for r in rows if r["label"] == entry.label]
    assert by_label[entry.label]["bpp_total"] == pytest.approx(np.mean(mine), rel=1e-12)
  assert json.loads((tmp_path / "summary.json").read_text())["n_images"] == 2


def test_tables_md_holds_the_bd_rates_of_the_summary(tmp_path):
  summary = rd.evaluate_systems(_entries(), _images()[:1], tmp_path, method="pchip",
                                keep_bitstreams=False, progress=False)
  text = (tmp_path / "tables.md").read_text()
  for rate in ("human", "total"):
    block = text[text.index(tables.RATE_NAMES[rate]):]
    _, rows = tables.parse_table(block)
    want = summary["bd_rate"][f"psnr/{rate}"]["fr_icmh/na3"]
    assert rows[1][0] == "FR-ICMH"
    assert tables.parse_percent(rows[1][1]) == pytest.approx(want, abs=0.006)
    assert rows[0][1].startswith("+0.00 %")
  _, rows = tables.parse_table(text[text.index("**Table II**"):])
  assert rows[0] == ["ICMH-FF (evaluated)", "0.00 M (6)", "n/a", "n/a"]
  assert (tmp_path / "rd_systems_psnr.png").stat().st_size > 0
  assert not (tmp_path / "bitstreams").exists()
