"""RD plots draw the right points with the paper's line styles (solid human, dashed total)."""

import numpy as np
from PIL import Image

from icmh_jax.evaluation import plots


def _runs():
  runs = []
  for system, na, f in [("icmh_ff", 3, 1.0), ("fr_icmh", 3, 0.9), ("fr_icmh", 5, 0.8)]:
    for k, lam in enumerate((0.03, 0.005, 0.01)):  # deliberately unsorted
      runs.append(dict(system=system, na=na, lam=lam, bpp_human=f * (k + 1) * 0.1,
                       bpp_total=f * (k + 1) * 0.1 + 0.2, psnr=30.0 + k, ms_ssim=0.9))
  return runs


def _lines(ax):
  return {(l.get_label(), l.get_linestyle()): (l.get_xdata(), l.get_ydata()) for l in ax.lines}


def test_fig6_has_one_panel_per_na_with_solid_human_and_dashed_total_curves():
  fig = plots.systems_figure(_runs())
  assert [ax.get_title() for ax in fig.axes] == ["N_a = 3", "N_a = 5"]
  lines = _lines(fig.axes[0])
  x, y = lines["FR-ICMH (human layer)", "-"]
  np.testing.assert_allclose(x, [0.09, 0.18, 0.27])
  np.testing.assert_allclose(y, [30.0, 31.0, 32.0])
  x, _ = lines["FR-ICMH (total)", "--"]
  np.testing.assert_allclose(x, [0.29, 0.38, 0.47])
  assert set(lines) == {("ICMH-FF (human layer)", "-"), ("ICMH-FF (total)", "--"),
                        ("FR-ICMH (human layer)", "-"), ("FR-ICMH (total)", "--")}


def test_fig7_has_one_panel_per_system_with_one_curve_pair_per_na():
  fig = plots.na_figure(_runs())
  assert [ax.get_title() for ax in fig.axes] == ["ICMH-FF", "FR-ICMH"]
  assert set(_lines(fig.axes[1])) == {("N_a = 3 (human layer)", "-"), ("N_a = 3 (total)", "--"),
                                      ("N_a = 5 (human layer)", "-"), ("N_a = 5 (total)", "--")}


def test_plot_files_are_png_images(tmp_path):
  for fn in (plots.plot_systems, plots.plot_over_na):
    path = fn(_runs(), tmp_path / "sub" / f"{fn.__name__}.png")
    with Image.open(path) as im:
      assert im.format == "PNG" and im.size[0] > 2 * im.size[1] > 0  # two panels side by side
