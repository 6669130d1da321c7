"""Rate-distortion evaluation with real bitstreams.

For every (system, λ) entry and every image: `system.compress` writes a real two-layer `.icmh`
file, which is decoded again (human layer from the whole file, machine layer from the file cut
after layer 0), and one row records

  bytes / bpp of the machine layer, the human layer and the file (bpp = 8·bytes / (H·W) of the
    original image; machine = the cut file a machine decoder receives, human = the rest),
  the estimated bpp per layer from the eval forward's likelihoods (−Σ log2 p / (H·W)),
  PSNR and MS-SSIM of the human reconstruction, PSNR of the machine reconstruction on the edge
  mask m (and on the whole image), and the largest |decoded − eval-forward| pixel difference.

`evaluate_systems` writes per_image.csv, summary.json (means per system/λ, BD-rates), tables.md
(Tables I and II) and the Fig. 6/7 plots, and returns the summary.
"""

import csv
import dataclasses
import json
import math
import os
import sys
from typing import Any

import numpy as np

from icmh_jax.evaluation import bdrate, plots, tables

COLUMNS = ("system", "na", "lam", "label", "image", "height", "width", "bytes_machine",
           "bytes_human", "bytes_total", "bpp_machine", "bpp_human", "bpp_total", "est_bpp_machine",
           "est_bpp_human", "est_bpp_total", "psnr", "ms_ssim", "psnr_m_edge", "psnr_m",
           "decode_err", "edge_source")
KEYS = ("system", "na", "lam", "label")
MEANS = COLUMNS[7:-1]


@dataclasses.dataclass
class Entry:
  """One RD point's codec: a system with its parameters.

  Attributes:
    system: a `icmh_jax.models.system.System` (from the registry).
    params: its parameters.
    lam: the λ it was trained for (a label; None if unknown).
    label: where it came from (checkpoint path, "random-init", ...).
  """
  system: Any
  params: Any
  lam: float | None = None
  label: str = ""

  @property
  def na(self):
    return self.system.config["num_slices_a"] if self.system.has_additional else None


def load_entries(paths):
  """Entries from checkpoint paths (params dirs or training workdirs, via the registry).

  A path that is not itself a checkpoint but holds checkpoints (e.g. runs/) contributes each of
  its sub-directories that is one, in name order. λ is read from the checkpoint's meta
  (`lam`, `loss.lam` or `config.loss.lam`) when present.

  Raises:
    CheckpointError: a path that is neither a checkpoint nor a folder of them.
  """
  from icmh_jax.errors import CheckpointError
  from icmh_jax.models.registry import load_system
  from icmh_jax.params_io import read_meta, resolve_params_dir
  found = []
  for path in paths:
    try:
      resolve_params_dir(path)
      found.append(path)
      continue
    except CheckpointError:
      if not os.path.isdir(path):
        raise
    subs = []
    for name in sorted(os.listdir(path)):
      try:
        resolve_params_dir(os.path.join(path, name))
        subs.append(os.path.join(path, name))
      except CheckpointError:
        pass
    if not subs:
      raise CheckpointError(f"{path} is not a checkpoint and holds none")
    found += subs
  entries = []
  for path in found:
    meta = read_meta(path)
    cfg = meta.get("config") or {}
    lam = meta.get("lam", (meta.get("loss") or cfg.get("loss") or {}).get("lam"))
    system, params = load_system(path)
    entries.append(Entry(system, params, None if lam is None else float(lam), str(path)))
  return entries


def estimated_bits(likelihoods):
  """−Σ log2 p over the arrays of one layer's likelihood dict (empty dict: 0)."""
  return float(sum(-np.sum(np.log2(np.asarray(v, np.float64))) for v in likelihoods.values()))


class _Measure:
  """Jitted eval forward and metrics, compiled once per system and image shape."""

  def __init__(self):
    import jax
    from icmh_jax.evaluation import metrics
    self._jax, self._forward = jax, {}
    self.psnr = jax.jit(metrics.psnr)
    self.ms_ssim = jax.jit(metrics.ms_ssim)
    self.masked_psnr = jax.jit(metrics.masked_psnr)
    self.min_side = (metrics.WIN_SIZE - 1) * 2 ** (len(metrics.MS_SSIM_WEIGHTS) - 1)

  def forward(self, system, params, x):
    """Eval forward of x [1, H, W, 3] (padded)."""
    # Keyed by name and config, so entries that differ only in params (λ) share one compile.
    key = (system.name, json.dumps(system.config, sort_keys=True, default=str))
    fn = self._forward.get(key)
    if fn is None:
      fn = self._jax.jit(lambda p, v: system.apply(p, v, train=False))
      self._forward[key] = fn
    return fn(params, x)


def measure_image(entry, image, measure, bitstream_path=None):
  """One row of the per-image table (see module docstring) for `entry` on `image`."""
  from icmh_jax.entropy.container import read_container, write_container
  from icmh_jax.models.coding import pad_image
  system, params, x = entry.system, entry.params, image.x
  h, w = x.shape[:2]
  data = system.compress(params, x)
  if bitstream_path:
    with open(bitstream_path, "wb") as f:
      f.write(data)
  layers = (0, 1) if system.has_additional else (0,)
  header, payloads = read_container(data, need_layers=layers)
  # The machine layer's bytes: header + layer 0, the prefix a machine decoder receives (its
  # length is that of a one-layer file); decoding from the cut prefix proves it is enough.
  b_m = len(write_container(header, {0: payloads[0]}))
  x_hat_m = system.decompress(params, data[:b_m], layer="machine")
  x_hat = system.decompress(params, data, layer="human") if system.has_additional else x_hat_m

  padded, (top, _, left, _) = pad_image(x[None], system.config["pad_multiple"])  # as compress
  out = measure.forward(system, params, padded)
  est = {k: estimated_bits(out.likelihoods[k]) / (h * w) for k in ("machine", "human")}
  fwd = np.clip(np.asarray(out.x_hat[0, top:top + h, left:left + w]), 0, 1)

  b_t = len(data)
  row = dict(system=system.name, na=entry.na, lam=entry.lam, label=entry.label, image=image.name,
             height=h, width=w, bytes_machine=b_m, bytes_human=b_t - b_m, bytes_total=b_t,
             bpp_machine=8 * b_m / (h * w), bpp_human=8 * (b_t - b_m) / (h * w),
             bpp_total=8 * b_t / (h * w), est_bpp_machine=est["machine"],
             est_bpp_human=est["human"], est_bpp_total=est["machine"] + est["human"],
             psnr=float(measure.psnr(x, x_hat)), psnr_m=float(measure.psnr(x, x_hat_m)),
             ms_ssim=(float(measure.ms_ssim(x, x_hat)) if min(h, w) > measure.min_side
                      else math.nan),
             psnr_m_edge=(float(measure.masked_psnr(x, x_hat_m, image.edges))
                          if image.edges is not None else math.nan),
             decode_err=float(np.max(np.abs(fwd - x_hat))), edge_source=image.edge_source)
  return row


def summarize(rows):
  """Means (NaN-aware) of the numeric columns per (system, na, lam, label), in first-seen order."""
  groups = {}
  for r in rows:
    groups.setdefault(tuple(r[k] for k in KEYS), []).append(r)
  runs = []
  for key, rs in groups.items():
    run = dict(zip(KEYS, key), n_images=len(rs))
    for col in MEANS:
      vals = np.array([r[col] for r in rs], np.float64)
      run[col] = float(np.nanmean(vals)) if np.any(~np.isnan(vals)) else math.nan
    runs.append(run)
  return runs


def _bd_summary(runs, method, anchor):
  out = {}
  for metric in tables.METRIC_NAMES:
    for rate in tables.RATES:
      vals = tables.bd_rates(runs, metric=metric, rate=rate, anchor=anchor, method=method)
      out[f"{metric}/{rate}"] = {f"{s}/na{na}": v for (s, na), (v, _) in vals.items()}
  return out


def _json_safe(obj):
  """NaN/inf -> None so summary.json is strict JSON."""
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  if isinstance(obj, dict):
    return {k: _json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_json_safe(v) for v in obj]
  return obj


def bitstream_name(image_name: str) -> str:
  """The file an image's bitstream is kept in: its name ("skimage/chelsea") with every character
  but letters, digits and -_. made "_", plus ".icmh"."""
  return "".join(c if c.isalnum() or c in "-_." else "_" for c in image_name) + ".icmh"


def evaluate_systems(entries, images, out_dir, *, method=bdrate.DEFAULT_METHOD,
                     anchor=tables.ANCHOR, keep_bitstreams=True, param_counts=None, progress=True):
  """Real-bitstream RD evaluation of every entry on every image, with tables and plots.

  Args:
    entries: list[Entry], one per (system, N_a, λ).
    images: list[`icmh_jax.evaluation.images.EvalImage`].
    out_dir: output folder (created): per_image.csv, summary.json, tables.md, rd_*.png and,
      with `keep_bitstreams`, bitstreams/<k>_<system>/<image>.icmh.
    method: BD-rate fit ("cubic" or "pchip"), stated in the tables.
    anchor: BD-rate anchor system (the paper: icmh_ff).
    param_counts: extra Table II rows {row label: {na: int}} (e.g. the paper's sizes), shown
      after the rows of the evaluated models (`System.param_counts`, jax.eval_shape).
    progress: tqdm bar on stderr.

  Returns:
    The summary dict written to summary.json: runs (means per entry), bd_rate, files.
  """
  from tqdm import tqdm
  if not entries or not images:
    raise ValueError(f"nothing to evaluate: {len(entries)} entries, {len(images)} images")
  os.makedirs(out_dir, exist_ok=True)
  measure, rows = _Measure(), []
  with tqdm(total=len(entries) * len(images), desc="evaluate", unit="img", file=sys.stderr,
            disable=not progress) as bar:
    for k, entry in enumerate(entries):
      folder = os.path.join(out_dir, "bitstreams", f"{k:03d}_{entry.system.name}")
      if keep_bitstreams:
        os.makedirs(folder, exist_ok=True)
      for image in images:
        path = os.path.join(folder, bitstream_name(image.name)) if keep_bitstreams else None
        rows.append(measure_image(entry, image, measure, path))
        bar.update()
  files = dict(per_image=os.path.join(out_dir, "per_image.csv"),
               summary=os.path.join(out_dir, "summary.json"),
               tables=os.path.join(out_dir, "tables.md"))
  with open(files["per_image"], "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  runs = summarize(rows)
  human = [r for r in runs if r["na"] is not None]
  counts = {**evaluated_param_counts(entries), **(param_counts or {})}
  md = [tables.table_i(human, metric=m, rate=r, anchor=anchor, method=method)
        for m in tables.METRIC_NAMES for r in tables.RATES]
  with open(files["tables"], "w") as f:
    f.write("\n\n".join(md + [tables.table_ii(counts)]) + "\n")
  for metric in tables.METRIC_NAMES if human else ():
    stem = os.path.join(out_dir, "rd_{}_" + metric + ".png")
    files[f"fig6_{metric}"] = plots.plot_systems(human, stem.format("systems"), metric=metric)
    files[f"fig7_{metric}"] = plots.plot_over_na(human, stem.format("over_na"), metric=metric)
  summary = dict(runs=runs, n_images=len(images), method=method, anchor=anchor,
                 bd_rate=_bd_summary(human, method, anchor), param_counts=counts, files=files)
  with open(files["summary"], "w") as f:
    json.dump(_json_safe(summary), f, indent=1)
  return summary


def evaluated_param_counts(entries):
  """Table II rows of the evaluated human-layer models, {"FR-ICMH (evaluated)": {na: int}},
  in the paper's system order (`System.param_counts`: jax.eval_shape, nothing allocated)."""
  order = list(tables.SYSTEM_LABELS)
  counts = {}
  for e in sorted(entries, key=lambda e: order.index(e.system.name)
                  if e.system.name in order else len(order)):
    row = f"{tables.SYSTEM_LABELS.get(e.system.name, e.system.name)} (evaluated)"
    if e.na is not None and e.na not in counts.get(row, {}):
      counts.setdefault(row, {})[e.na] = e.system.param_counts()["additional"]
  return counts


def run_from_config(config, checkpoints, data, out_dir):
  """`evaluate.py`: load the checkpoints and images named, then `evaluate_systems`.

  Args:
    config: an eval config (configs/eval/*.py): bd.method, bd.anchor, data.*, keep_bitstreams,
      table_ii_paper_size.
    checkpoints: list of checkpoint paths or folders of them.
    data: image folder, "bundled" or "coco_val".
    out_dir: output folder.

  Returns:
    The summary of `evaluate_systems`.
  """
  from icmh_jax.evaluation import images as images_lib
  d = config.data
  images = images_lib.load_images(data, data_dir=d.dir or None, split=d.split, edges=d.edges,
                                  crop=d.crop or None, limit=d.limit or None)
  entries = load_entries(checkpoints)
  counts = None
  if config.table_ii_paper_size:
    nas = sorted({e.na for e in entries if e.na is not None})
    counts = {f"{tables.SYSTEM_LABELS[s]} (N = 128, M = 320)": c
              for s, c in tables.param_counts(("fr_icmh", "pr_icmh"), nas).items()}
  return evaluate_systems(entries, images, out_dir, method=config.bd.method,
                          anchor=config.bd.anchor, keep_bitstreams=config.keep_bitstreams,
                          param_counts=counts)
