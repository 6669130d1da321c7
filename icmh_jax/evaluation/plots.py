"""RD plots as PNG files (matplotlib, Agg backend, no display needed).

`plot_systems` is the paper's Fig. 6: PSNR vs bpp per system, a solid line for the rate of the
human (additional) layer alone and a dashed line, same colour, for the total rate of the file.
`plot_over_na` is Fig. 7: one panel per system with one curve per N_a (same line styles).
Inputs are run records as in `icmh_jax.evaluation.tables` (system, na, bpp_human, bpp_total, and
the quality key).
"""

import os

from icmh_jax.evaluation.tables import METRIC_NAMES, SYSTEM_LABELS, curves

COLORS = {"icmh_ff": "tab:blue", "fr_icmh": "tab:orange", "pr_icmh": "tab:green",
          "sa_icm": "tab:gray", "tcm": "tab:purple"}
NA_COLORS = {3: "tab:blue", 4: "tab:orange", 5: "tab:green"}


def _pyplot():
  import matplotlib
  matplotlib.use("Agg", force=True)  # files only; never needs a display
  import matplotlib.pyplot as plt
  return plt


def _draw(ax, runs, key, metric, color, label):
  """One system/N_a: solid = human layer only, dashed = total."""
  (r_h, q_h) = curves(runs, metric, "human")[key]
  (r_t, q_t) = curves(runs, metric, "total")[key]
  ax.plot(r_h, q_h, "-o", color=color, ms=3, label=f"{label} (human layer)")
  ax.plot(r_t, q_t, "--s", color=color, ms=3, label=f"{label} (total)")


def plot_systems(runs, path, *, metric="psnr", nas=None):
  """Writes Fig. 6 (`systems_figure`) to the PNG file `path` and returns `path`."""
  return _save(systems_figure(runs, metric=metric, nas=nas), path)


def plot_over_na(runs, path, *, metric="psnr", systems=None):
  """Writes Fig. 7 (`na_figure`) to the PNG file `path` and returns `path`."""
  return _save(na_figure(runs, metric=metric, systems=systems), path)


def systems_figure(runs, *, metric="psnr", nas=None):
  """Fig. 6: quality vs bpp, one panel per N_a, one colour per system.

  Args:
    runs: run records.
    metric: "psnr" or "ms_ssim".
    nas: the N_a panels (default: every N_a in `runs`, machine-only systems excluded).

  Returns:
    A matplotlib Figure; each system adds a solid (human layer) and a dashed (total) line.
  """
  plt = _pyplot()
  keys = sorted(curves(runs, metric, "human"), key=lambda k: (k[1] or 0, _order(k[0])))
  nas = sorted({na for _, na in keys if na is not None}) if nas is None else list(nas)
  fig, axes = plt.subplots(1, max(len(nas), 1), figsize=(5 * max(len(nas), 1), 4), squeeze=False)
  for ax, na in zip(axes[0], nas or [None]):
    for system, k_na in keys:
      if k_na == na:
        label = SYSTEM_LABELS.get(system, system)
        _draw(ax, runs, (system, k_na), metric, COLORS.get(system), label)
    ax.set_title(f"N_a = {na}")
    ax.set_xlabel("bpp")
    ax.set_ylabel(f"{METRIC_NAMES[metric]}" + (" [dB]" if metric == "psnr" else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
  return fig


def na_figure(runs, *, metric="psnr", systems=None):
  """Fig. 7: one panel per system, one colour per N_a.

  Args:
    runs: run records.
    metric: "psnr" or "ms_ssim".
    systems: the panels (default: every system in `runs` that has an N_a).

  Returns:
    A matplotlib Figure; each N_a adds a solid (human layer) and a dashed (total) line.
  """
  plt = _pyplot()
  keys = sorted((k for k in curves(runs, metric, "human") if k[1] is not None),
                key=lambda k: (_order(k[0]), k[1]))
  systems = list(dict.fromkeys(s for s, _ in keys)) if systems is None else list(systems)
  fig, axes = plt.subplots(1, max(len(systems), 1), figsize=(5 * max(len(systems), 1), 4),
                           squeeze=False)
  for ax, system in zip(axes[0], systems):
    for s, na in keys:
      if s == system:
        _draw(ax, runs, (s, na), metric, NA_COLORS.get(na), f"N_a = {na}")
    ax.set_title(SYSTEM_LABELS.get(system, system))
    ax.set_xlabel("bpp")
    ax.set_ylabel(f"{METRIC_NAMES[metric]}" + (" [dB]" if metric == "psnr" else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
  return fig


def _order(system):
  """Paper order (LIC-TCM, SA-ICM, ICMH-FF, FR-ICMH, PR-ICMH), then others by name."""
  names = list(SYSTEM_LABELS)
  return (names.index(system), "") if system in names else (len(names), str(system))


def _save(fig, path):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  _pyplot().close(fig)
  return path
