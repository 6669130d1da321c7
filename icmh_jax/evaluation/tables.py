"""Markdown tables in the layout of the paper's Table I (BD-rate) and Table II (parameters).

Table I: rows ICMH-FF / FR-ICMH / PR-ICMH, columns N_a = 3 / 4 / 5, each cell the BD-rate of the
row's system against ICMH-FF with the same N_a, with the paper's number beside ours. It is made for
both rate definitions (the additional layer's bits only, and the whole file) and both qualities
(PSNR, MS-SSIM). Table II: the additional model's parameter count per N_a (`jax.eval_shape` through
the registry), beside the paper's 58.7 / 67.0 / 76.6 M.

A run record (`icmh_jax.evaluation.rd`) is a mapping with at least `system`, `na` and the
per-system means `bpp_human`, `bpp_total`, `psnr`, `ms_ssim`; one record per (system, N_a, λ).
"""

import math

import numpy as np

from icmh_jax.evaluation import bdrate

SYSTEM_LABELS = {"tcm": "LIC-TCM", "sa_icm": "SA-ICM", "icmh_ff": "ICMH-FF", "fr_icmh": "FR-ICMH",
                 "pr_icmh": "PR-ICMH"}
HUMAN_SYSTEMS = ("icmh_ff", "fr_icmh", "pr_icmh")
NAS = (3, 4, 5)
ANCHOR = "icmh_ff"
# Seed paper, Table I: BD-rate (PSNR) vs ICMH-FF with the same N_a, in percent.
PAPER_TABLE_I = {"icmh_ff": {3: 0.0, 4: 0.0, 5: 0.0},
                 "fr_icmh": {3: -2.43, 4: -4.23, 5: -7.93},
                 "pr_icmh": {3: -29.57, 4: -26.06, 5: -26.78}}
# Seed paper, Table II: parameters of the additional model, millions.
PAPER_TABLE_II = {3: 58.7, 4: 67.0, 5: 76.6}
RATES = {"human": "bpp_human", "total": "bpp_total"}
RATE_NAMES = {"human": "additional (human) layer only", "total": "total (machine + human layers)"}
METRIC_NAMES = {"psnr": "PSNR", "ms_ssim": "MS-SSIM"}


def curves(runs, metric="psnr", rate="human"):
  """RD points grouped per (system, N_a).

  Args:
    runs: run records (see module docstring).
    metric: "psnr" or "ms_ssim".
    rate: "human" (bpp of the additional layer) or "total".

  Returns:
    {(system, na): (rates [n], qualities [n])} sorted by rate.
  """
  if rate not in RATES:
    raise ValueError(f"unknown rate definition {rate!r}; known: {', '.join(RATES)}")
  if metric not in METRIC_NAMES:
    raise ValueError(f"unknown quality metric {metric!r}; known: {', '.join(METRIC_NAMES)}")
  points = {}
  for r in runs:
    points.setdefault((r["system"], r["na"]), []).append((r[RATES[rate]], r[metric]))
  return {k: tuple(np.array(v) for v in zip(*sorted(p))) for k, p in points.items()}


def bd_rates(runs, *, metric="psnr", rate="human", anchor=ANCHOR, method=bdrate.DEFAULT_METHOD):
  """BD-rate (percent) of every (system, N_a) curve against the anchor with the same N_a.

  Returns:
    {(system, na): (value, note)}: value NaN with a short note when it cannot be computed
    (no anchor curve for that N_a, too few points for the method, no overlap).
  """
  pts = curves(runs, metric, rate)
  out = {}
  for (system, na), (r, q) in sorted(pts.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
    if (anchor, na) not in pts:
      out[system, na] = (math.nan, f"no {anchor} curve at N_a={na}")
      continue
    ra, qa = pts[anchor, na]
    try:
      out[system, na] = (bdrate.bd_rate(ra, qa, r, q, method=method), "")
    except ValueError as e:
      out[system, na] = (math.nan, str(e))
  return out


def _row(cells):
  return "| " + " | ".join(cells) + " |"


def table_i(runs, *, metric="psnr", rate="human", anchor=ANCHOR, method=bdrate.DEFAULT_METHOD,
            systems=HUMAN_SYSTEMS, nas=NAS, paper=PAPER_TABLE_I):
  """Table I: BD-rate vs the anchor with the same N_a, ours with the paper's beside it.

  Args:
    runs: run records.
    metric, rate: quality and rate definition (see `curves`).
    anchor: the system the BD-rate is measured against (ICMH-FF in the paper).
    method: BD-rate fit (`bdrate.METHODS`), stated in the caption.
    systems, nas: rows and columns.
    paper: {system: {na: percent}} shown as "(paper x %)"; pass {} to leave it out.

  Returns:
    Markdown: a caption line, a blank line, then the table. A cell reads "-2.10 % (paper -2.43 %)";
    "n/a" where no number could be computed (the notes under the table say why).
  """
  values = bd_rates(runs, metric=metric, rate=rate, anchor=anchor, method=method)
  caption = (f"**Table I** BD-rate ({METRIC_NAMES[metric]}) vs {SYSTEM_LABELS.get(anchor, anchor)} "
             f"with the same N_a; rate: {RATE_NAMES[rate]}; fit: {method} "
             f"({bdrate.METHOD_NAMES[method]})."
             + (" Paper numbers from its Table I (PSNR)." if metric == "psnr" and paper else ""))
  lines = [caption, "", _row(["System"] + [f"N_a = {na}" for na in nas]),
           _row(["---"] * (len(nas) + 1))]
  notes = []
  for system in systems:
    cells = [SYSTEM_LABELS.get(system, system)]
    for na in nas:
      value, note = values.get((system, na), (math.nan, "not evaluated"))
      if note and note != "not evaluated":
        notes.append(f"{SYSTEM_LABELS.get(system, system)}, N_a = {na}: {note}")
      cell = bdrate.format_percent(value)
      ref = paper.get(system, {}).get(na) if metric == "psnr" else None
      cells.append(cell if ref is None else f"{cell} (paper {ref:+.2f} %)")
    lines.append(_row(cells))
  return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def param_counts(systems=("fr_icmh", "pr_icmh"), nas=NAS, model_config=None):
  """Additional-model parameters per system and N_a, from `jax.eval_shape` via the registry.

  Args:
    systems: registry names of human-layer systems.
    nas: N_a values.
    model_config: base model config (registry fields); `num_slices_a` is set per N_a.

  Returns:
    {system: {na: int}}.
  """
  from icmh_jax.models import registry
  base = dict(model_config or {})
  return {s: {na: registry.get_system(s, {**base, "num_slices_a": na}).param_counts()["additional"]
              for na in nas} for s in systems}


def table_ii(counts, *, paper=PAPER_TABLE_II, nas=NAS):
  """Table II: parameters of the additional model per N_a, ours beside the paper's.

  Args:
    counts: {row: {na: int}} (e.g. from `param_counts`); a registry name as row reads
      "FR-ICMH (ours)", any other row name is printed as given.
    paper: {na: millions} shown in a last row.
    nas: columns.

  Returns:
    Markdown: caption, blank line, table with cells like "58.72 M (58,723,412)".
  """
  lines = ["**Table II** Parameters of the additional model (jax.eval_shape via the registry).", "",
           _row(["Additional model"] + [f"N_a = {na}" for na in nas]),
           _row(["---"] * (len(nas) + 1))]
  for system, per_na in counts.items():
    cells = [f"{SYSTEM_LABELS[system]} (ours)" if system in SYSTEM_LABELS else str(system)]
    cells += [f"{per_na[na] / 1e6:.2f} M ({per_na[na]:,})" if na in per_na else "n/a" for na in nas]
    lines.append(_row(cells))
  if paper:
    lines.append(_row(["Paper (Table II)"] + [f"{paper[na]:.1f} M" if na in paper else "n/a"
                                                for na in nas]))
  return "\n".join(lines)


def parse_table(text):
  """Reads the first markdown table in `text` back.

  Returns:
    (header: list[str], rows: list[list[str]]) with cells stripped.
  """
  rows = []
  for line in text.splitlines():
    if line.strip().startswith("|"):
      rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    elif rows:
      break
  if len(rows) < 2:
    raise ValueError("no markdown table found")
  return rows[0], rows[2:]


def parse_percent(cell):
  """The first number of a Table I cell ("-2.10 % (paper ...)") as a float; NaN for "n/a"."""
  head = cell.split("%")[0].strip()
  return math.nan if head.startswith("n/a") else float(head)
