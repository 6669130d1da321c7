"""`make study`: the paper's comparison at CPU scale, as pre-registered in docs/study/protocol.md.

Trains a tiny SA-ICM (edge-masked loss, λ = 0.05) until its machine layer meets the protocol's
criterion, then ICMH-FF, FR-ICMH and PR-ICMH over it at N_a = 3 and four λ, our extension
(`residual_context="machine"`) for ICMH-FF and FR-ICMH at the same points, and a stand-alone
LIC-TCM of the same size; evaluates every model with real `.icmh` files on the held-out
validation photos and writes `DIR/report.md`: Tables I and II, Fig. 6 and 7, the training curves,
the machine layer's quality and one verdict per claim of the paper.

  python -m icmh_jax.study --out study_out [--quick] [--torch-reference DIR]

With `--torch-reference` (a LIC_TCM checkout, torch installed) the report also holds LIC-TCM
trained side by side with the PyTorch reference (`benchmarks.train_compare`).

Each λ curve starts from scratch at the largest λ; the smaller λ are fine-tuned from its weights
(as LIC codecs usually are): one long run and three short ones per curve. Re-running reuses
finished runs and resumes unfinished ones from their checkpoints. `--quick` is the same pipeline
with a few steps per run (a test of the machinery, not a result; it still compiles every system).
"""

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import time

from icmh_jax import compilation_cache, malloc_options, runs, xla_options

# The protocol (docs/study/protocol.md); `quick` runs the same pipeline with a few steps per run.
PLANS = {
    "full": dict(machine_steps=10000, first_steps=1400, next_steps=200, batch=4, crop=128,
                 lr=1e-3, eval_crop=256, images=0, machine_evals=15),
    # The full plan's shapes: a quick run fills the compilation cache the full run then reads.
    "quick": dict(machine_steps=2, first_steps=2, next_steps=1, batch=4, crop=128, lr=1e-3,
                  eval_crop=256, images=1, machine_evals=1),
}
LAMS = (0.05, 0.01, 0.002, 0.0004)  # the first from scratch, the others fine-tuned from it
NA = 3
MACHINE_LAM = 0.05
# The machine layer is good enough when its held-out edge PSNR (real bitstream) reaches this and
# its validation curve had flattened before the learning-rate drop at 80 %: the mean over the
# validations in (60 %, 80 %] of the steps is less than FLAT_DB above the mean over (40 %, 60 %].
MIN_EDGE_PSNR = 24.0
FLAT_DB = 0.5
MARGIN = 0.5  # a BD-rate closer to 0 than this many percent is "no difference" (noise at this size)


@dataclasses.dataclass(frozen=True)
class Variant:
  name: str
  family: str  # configs/<family>.py
  residual_context: str | None  # None: the family has no such knob
  group: str  # "paper" (evaluated together, Table I) or "extension"
  label: str


VARIANTS = (
    Variant("icmh_ff", "icmh_ff", "none", "paper", "ICMH-FF"),
    Variant("fr_icmh", "fr_icmh", "none", "paper", "FR-ICMH"),
    Variant("pr_icmh", "pr_icmh", None, "paper", "PR-ICMH"),
    Variant("tcm", "tcm", None, "paper", "LIC-TCM (stand-alone)"),
    Variant("icmh_ff_ctx", "icmh_ff", "machine", "extension", "ICMH-FF + machine context"),
    Variant("fr_icmh_ctx", "fr_icmh", "machine", "extension", "FR-ICMH + machine context"),
)
EXTENSION_OF = {"icmh_ff_ctx": "icmh_ff", "fr_icmh_ctx": "fr_icmh"}


def say(msg: str) -> None:
  runs.say("study", msg)


def run_overrides(plan, out, steps, evals=1, **extra) -> dict:
  return {"schedule.total_steps": steps, "schedule.milestones": (max(int(steps * 0.8), 1),),
          "eval_every": max(steps // evals, 1), "ckpt_every": max(steps // 4, 1),
          "log_every": max(steps // 24, 1), "optim.lr": plan["lr"],
          "data.batch_size": plan["batch"], "data.crop": plan["crop"],
          "eval.compress_images": 0, "eval.num_batches": 2,
          "data.dir": os.path.join(out, "data"), "data.mask_source": "canny", **extra}


def plan_runs(plan, out):
  """(machine config, [(variant, λ, workdir, config)]): every config, before anything trains."""
  runs_dir = os.path.join(out, "runs")
  machine_dir = os.path.join(runs_dir, "sa_icm")
  machine = runs.load_config("sa_icm", f"tiny,lam={MACHINE_LAM}", **run_overrides(
      plan, out, plan["machine_steps"], plan["machine_evals"]))
  todo = []
  for v in VARIANTS:
    first = None
    for lam in LAMS:
      workdir = os.path.join(runs_dir, f"{v.name}_lam{lam}")
      extra = {} if v.residual_context is None else {"model.residual_context": v.residual_context}
      if v.family != "tcm":
        extra["base_checkpoint"] = machine_dir
      if first is not None:
        extra["init_from"] = first
      steps = plan["next_steps"] if first else plan["first_steps"]
      arg = f"tiny,lam={lam}" + ("" if v.family == "tcm" else f",na={NA}")
      todo.append((v, lam, workdir, runs.load_config(v.family, arg,
                                                    **run_overrides(plan, out, steps, **extra))))
      first = first or workdir
  return machine, machine_dir, todo


def logged_seconds(workdir) -> float:
  """The seconds a run's training loop logged (setup, data, train, eval, checkpoints) in the
  process that finished it."""
  last = [r for r in runs.read_metrics(workdir) if "time/train" in r][-1:]
  return sum(v for k, v in last[0].items() if k.startswith("time/")) if last else 0.0


def machine_criterion(records, steps):
  """(final val edge PSNR, flattening) from SA-ICM's validation records: the flattening is the
  mean val edge PSNR over (60 %, 80 %] of the steps minus the mean over (40 %, 60 %], before the
  learning rate drops at 80 % (the drop alone lifts the curve) and averaged because single
  validations of a model trained at lr 1e-3 swing by more than a dB."""
  val = [(r["step"], r["val/psnr_masked"]) for r in records if "val/psnr_masked" in r]
  if not val:
    return math.nan, math.nan

  def mean(lo, hi):
    window = [p for s, p in val if lo * steps < s <= hi * steps]
    return sum(window) / len(window) if window else math.nan

  return val[-1][1], mean(0.6, 0.8) - mean(0.4, 0.6)


def curve_points(summary, system, metric="psnr", rate="bpp_human"):
  """(rates, qualities) of one system's RD points at the study's N_a (`tables.curves`), by rate;
  empty when it was not run."""
  from icmh_jax.evaluation import tables
  name = {column: key for key, column in tables.RATES.items()}[rate]
  points = tables.curves(summary["runs"], metric, name)
  rates, qualities = points.get((system, None if system == "tcm" else NA), ((), ()))
  return list(rates), list(qualities)


def bd(summary_a, system_a, summary_t, system_t, *, metric="psnr", rate="bpp_human"):
  """BD-rate (%) of test against anchor (pchip), or NaN with the reason."""
  from icmh_jax.evaluation import bdrate
  ra, qa = curve_points(summary_a, system_a, metric, rate)
  rt, qt = curve_points(summary_t, system_t, metric, rate)
  if not ra or not rt:
    return math.nan, "not run"
  try:
    value = bdrate.bd_rate(ra, qa, rt, qt, method="pchip")
  except ValueError as e:
    return math.nan, str(e)
  if value != value:
    return value, (f"the curves do not overlap in quality: {system_a} {min(qa):.4g} to "
                   f"{max(qa):.4g}, {system_t} {min(qt):.4g} to {max(qt):.4g}")
  return value, ""


def verdict(value, note):
  """The protocol's verdict on a BD-rate the paper says is negative (a saving)."""
  if value != value:
    return f"**cannot be judged** ({note})"
  if abs(value) < MARGIN:
    return f"**not reproduced** (no difference: {value:+.2f} %)"
  return f"**{'reproduced' if value < 0 else 'not reproduced'}** ({value:+.2f} %)"


def machine_info() -> str:
  """The benchmarks' record of the machine (`harness.machine_info`), as one line."""
  from icmh_jax.benchmarks import harness
  m = harness.machine_info()
  return (f"{m['cpu']} ({m['usable_cores']} usable cores; {', '.join(m['isa']) or 'no AVX'}), "
          f"Python {m['python']}, jax {m['versions'].get('jax', '?')} on {m['backend']}")


def training_figure(todo, machine_dir, path):
  """Training loss (and SA-ICM's validation edge PSNR) over steps, one panel per variant."""
  from icmh_jax.evaluation import plots
  plt = plots._pyplot()
  names = ["sa_icm"] + [v.name for v in VARIANTS]
  fig, axes = plt.subplots(2, 4, figsize=(18, 7.5))
  axes = axes.ravel()
  rec = runs.read_metrics(machine_dir)
  ax = axes[0]
  ax.plot([r["step"] for r in rec if "loss" in r], [r["loss"] for r in rec if "loss" in r], "-",
          label="train loss")
  ax.set_title("SA-ICM (λ = 0.05, edge-masked)")
  ax.set_yscale("log")
  ax2 = ax.twinx()
  val = [(r["step"], r["val/psnr_masked"]) for r in rec if "val/psnr_masked" in r]
  if val:
    ax2.plot(*zip(*val), "o-", color="tab:red", label="val edge PSNR (dB)")
    ax2.set_ylabel("val edge PSNR (dB)", color="tab:red")
  for k, v in enumerate(VARIANTS, start=1):
    ax = axes[k]
    offset = 0
    for var, lam, workdir, cfg in todo:
      if var is not v:
        continue
      rec = runs.read_metrics(workdir)
      steps = [offset + r["step"] for r in rec if "loss" in r]
      ax.plot(steps, [r["loss"] for r in rec if "loss" in r], "-", label=f"λ = {lam}")
      offset += int(cfg.schedule.total_steps)
    ax.set_title(v.label + " (runs one after another)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
  for ax in axes[len(names):]:
    ax.axis("off")
  for ax in axes[:len(names)]:
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)
  fig.tight_layout()
  return plots._save(fig, path)


def rd_figure(paper, extension, path, metric="psnr"):
  """Fig. 6 at N_a = 3 with LIC-TCM (total = its only layer) and the extension overlaid."""
  from icmh_jax.evaluation import plots
  plt = plots._pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
  styles = {"icmh_ff": "tab:blue", "fr_icmh": "tab:orange", "pr_icmh": "tab:green"}
  for ax, rate, title in ((axes[0], "bpp_human", "human layer only"),
                          (axes[1], "bpp_total", "total (machine + human)")):
    for s, color in styles.items():
      ax.plot(*curve_points(paper, s, metric, rate), "-o", ms=3, color=color,
              label=plots.SYSTEM_LABELS[s])
    for base in EXTENSION_OF.values():
      if curve_points(extension, base)[0]:
        ax.plot(*curve_points(extension, base, metric, rate), ":^", ms=3, color=styles[base],
                label=f"{plots.SYSTEM_LABELS[base]} + machine context (ours)")
    if curve_points(paper, "tcm")[0]:
      ax.plot(*curve_points(paper, "tcm", metric, "bpp_total"), "--s", ms=3, color="tab:purple",
              label="LIC-TCM stand-alone (its only layer)")
    ax.set_title(f"{plots.METRIC_NAMES[metric]} vs bpp: {title}")
    ax.set_xlabel("bpp")
    ax.set_ylabel(plots.METRIC_NAMES[metric] + (" [dB]" if metric == "psnr" else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  return plots._save(fig, path)


def main(argv=None) -> int:
  if argv is None:  # run from the command line
    malloc_options.reexec()
  p = argparse.ArgumentParser(prog="python -m icmh_jax.study", description=__doc__.splitlines()[0])
  p.add_argument("--out", default="study_out", help="output folder (default study_out)")
  p.add_argument("--quick", action="store_true",
                 help="a few steps per run: checks the pipeline in minutes, measures nothing")
  p.add_argument("--variants", default=",".join(v.name for v in VARIANTS),
                 help="the variants to train and evaluate (default: all); the report names the "
                      "others as not run. Two calls with disjoint variants and --train-only can "
                      "train side by side; a last call with all of them evaluates")
  p.add_argument("--train-only", action="store_true", help="stop after training")
  p.add_argument("--torch-reference", metavar="DIR", default=None,
                 help="a LIC_TCM checkout (torch installed): also train LIC-TCM side by side with "
                      "it (`benchmarks.train_compare`, 300 steps; reused once written) and report "
                      "both curves")
  args = p.parse_args(argv)
  known = {v.name: v for v in VARIANTS}
  names = [n.strip() for n in args.variants.split(",") if n.strip()]
  if not names or any(n not in known for n in names):
    p.error(f"--variants {args.variants!r}: choose among {', '.join(known)}")
  compilation_cache.enable()
  xla_options.for_training()
  from icmh_jax.errors import IcmhError
  try:
    return study(args.out, PLANS["quick" if args.quick else "full"], args.quick,
                 [known[n] for n in names], args.train_only, args.torch_reference)
  except IcmhError as e:
    print(f"study: error: {e}", file=sys.stderr)
    return 1


def side_by_side(out, reference_dir, quick) -> dict | None:
  """`train_compare` with its control into out/train_compare (its default size; 3 steps when
  quick), reusing the sides already written there; None without a reference."""
  if not reference_dir:
    return None
  from icmh_jax.benchmarks import train_compare
  steps, window = (3, 2) if quick else (300, 100)
  say(f"training LIC-TCM side by side with the PyTorch reference ({steps} steps each, the same "
      "noise on both sides, and the reference again with its own noise; sides already trained "
      "are reused)")
  return train_compare.compare(reference_dir, os.path.join(out, "train_compare"), steps=steps,
                               window=window, control=True)


def side_by_side_section(result) -> list[str]:
  """The report's lines on `train_compare`'s result (None: how to produce it)."""
  if result is None:
    return ["## Training side by side with the PyTorch reference", "",
            "Not run: pass `--torch-reference DIR` (a LIC_TCM checkout with torch), or run "
            "`python -m icmh_jax.benchmarks.train_compare` (README).", ""]
  from icmh_jax.benchmarks import train_compare
  c, m = result["config"], result["machine"]
  lines = ["## Training side by side with the PyTorch reference", "",
           f"LIC-TCM N={c['N']} (M={c['M']}, {c['num_slices']} slices), batch {c['batch']} x "
           f"{c['crop']}², λ={c['lam']}, Adam {c['lr']} (aux {c['aux_lr']}) at a constant rate, "
           f"clip {c['clip_norm']}, {c['steps']} steps per side; the same initial weights (ours, "
           f"converted) and the same batches (same digests on both sides: "
           f"{'yes' if result['same_batches'] else 'NO'}); machine {m.get('cpu', '?')}, "
           f"{m.get('usable_cores', '?')} cores. " + (
               "The reference adds the training noise our step drew, so both sides run the same "
               "computation and differ only in float arithmetic (step 1 below); those last-bit "
               "differences grow from step to step, as in any chaotic training, and the lines "
               "below say for how many steps the losses stay within 0.1 %. The control, the "
               "reference trained again with noise of its own, shows how far the curves of one "
               "code move apart when its runs part."
               if c.get("noise") == "shared" else
               "The noise draws differ, so the curves compare, not single steps; the control, "
               "the reference trained again with other noise, shows how far two runs of the "
               "same code drift apart."), "",
           "```", train_compare.summary(result), "```", "",
           "![side by side](train_compare/train_compare.png)", ""]
  return lines


def study(out, plan, quick, variants=VARIANTS, train_only=False, torch_reference=None) -> int:
  os.makedirs(out, exist_ok=True)
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.ERROR)
  from icmh_jax.data import bundled
  import numpy as np
  from icmh_jax.evaluation import images as images_lib, rd
  t_all = time.perf_counter()
  say("building the bundled data set (photos + Canny edge maps)")
  bundled.prepare(os.path.join(out, "data"), "canny", progress=True)
  machine, machine_dir, todo = plan_runs(plan, out)
  todo = sorted((t for t in todo if t[0] in variants), key=lambda t: variants.index(t[0]))
  seconds = {"sa_icm": runs.train(machine, machine_dir, "SA-ICM", tag="study")[0]}
  for k, (v, lam, workdir, cfg) in enumerate(todo, start=1):
    say(f"run {k}/{len(todo)}")
    seconds[os.path.basename(workdir)] = runs.train(cfg, workdir, f"{v.label} λ={lam}",
                                                    base=machine, tag="study")[0]
  t_train = time.perf_counter() - t_all
  t = time.perf_counter()
  compared = side_by_side(out, torch_reference, quick)
  t_compare = time.perf_counter() - t
  if train_only:
    say(f"trained {', '.join(v.name for v in variants)} in {t_train:.0f} s")
    return 0
  say("evaluating every model with real bitstreams on the held-out photos")
  t = time.perf_counter()
  images = images_lib.load_images("bundled", data_dir=os.path.join(out, "data"),
                                  split="validation", edges="canny", crop=plan["eval_crop"],
                                  limit=plan["images"] or None)
  summaries = {}
  for group in ("paper", "extension"):
    dirs = [w for v, _, w, _ in todo if v.group == group]
    summaries[group] = rd.evaluate_systems(
        rd.load_entries(dirs), images, os.path.join(out, "eval", group),
        method="pchip") if dirs else {"runs": [], "param_counts": {}, "n_images": len(images)}
  t_eval = time.perf_counter() - t
  timings = dict(train=t_train, evaluate=t_eval, side_by_side=t_compare,
                 total=time.perf_counter() - t_all, runs=seconds,
                 logged=sum(logged_seconds(w) for w in [machine_dir] + [t[2] for t in todo]))
  figs = dict(training=training_figure(todo, machine_dir, os.path.join(out, "training.png")),
              fig6_psnr=rd_figure(summaries["paper"], summaries["extension"],
                                  os.path.join(out, "fig6_psnr.png")),
              fig6_ms_ssim=rd_figure(summaries["paper"], summaries["extension"],
                                     os.path.join(out, "fig6_ms_ssim.png"), "ms_ssim"))
  fig7 = summaries["paper"]["files"].get("fig7_psnr")
  if fig7 and summaries["paper"]["runs"]:
    figs["fig7_psnr"] = shutil.copyfile(fig7, os.path.join(out, "fig7_psnr.png"))
  variance = float(np.mean([np.var(im.x) for im in images]))
  results = analyse(summaries, runs.read_metrics(machine_dir), plan, variance)
  missing = [v.label for v in VARIANTS if v not in variants]
  path = write_report(out, plan, quick, summaries, results, timings, figs, missing, compared)
  with open(os.path.join(out, "study.json"), "w") as f:
    json.dump(rd._json_safe(dict(plan=plan, lams=LAMS, na=NA, results=results,
                                 timings=timings)), f, indent=1)
  say(f"done in {timings['total']:.0f} s: {path}")
  return 0


def analyse(summaries, machine_records, plan, variance) -> dict:
  """Every number the report's verdicts rest on (`variance`: the mean pixel variance of the
  evaluation images, for the residual energy)."""
  paper, ext = summaries["paper"], summaries["extension"]
  res = {"bd": {}, "ext": {}}
  for metric in ("psnr", "ms_ssim"):
    for rate in ("bpp_human", "bpp_total"):
      for s in ("fr_icmh", "pr_icmh"):
        res["bd"][f"{s}/{metric}/{rate}"] = bd(paper, "icmh_ff", paper, s, metric=metric, rate=rate)
      res["bd"][f"pr_vs_fr/{metric}/{rate}"] = bd(paper, "fr_icmh", paper, "pr_icmh",
                                                  metric=metric, rate=rate)
      for e, base in EXTENSION_OF.items():
        res["ext"][f"{base}/{metric}/{rate}"] = bd(paper, base, ext, base, metric=metric, rate=rate)
  for s in ("icmh_ff", "fr_icmh", "pr_icmh"):
    res["bd"][f"{s}/vs_tcm/psnr/bpp_total"] = bd(paper, "tcm", paper, s, rate="bpp_total")
  human = [r for r in paper["runs"] if r["na"] is not None]
  machine_rows = human[:1]
  res["machine"] = {k: machine_rows[0][k] if machine_rows else math.nan
                    for k in ("bpp_machine", "psnr_m_edge", "psnr_m")}
  final, gain = machine_criterion(machine_records, plan["machine_steps"])
  res["machine"].update(val_edge_psnr=final, val_flattening=gain)
  res["machine"]["met"] = bool(res["machine"]["psnr_m_edge"] >= MIN_EDGE_PSNR and gain < FLAT_DB)
  # How much of x the machine layer leaves to the human layer: ‖x − x̂m‖² / ‖x − mean(x)‖².
  # From the mean machine PSNR, so an estimate.
  psnr_m = res["machine"]["psnr_m"]
  res["residual_energy"] = math.nan if psnr_m != psnr_m else 10 ** (-psnr_m / 10) / variance
  res["rate_split"] = {f"{r['system']}/{r['lam']}": (r["bpp_machine"], r["bpp_human"])
                       for r in human}
  res["params"] = paper["param_counts"]
  return res


def _adds(summary, system, psnr_m) -> str:
  rates, psnrs = curve_points(summary, system)
  if not rates:
    return f"{system} not run"
  return (f"{system} {min(psnrs) - psnr_m:+.2f} to {max(psnrs) - psnr_m:+.2f} dB at "
          f"{min(rates):.3f} to {max(rates):.3f} bpp")


def _pct(pair):
  value, note = pair
  return "n/a" if value != value else f"{value:+.2f} %"


def write_report(out, plan, quick, summaries, res, timings, figs, missing=(),
                 compared=None) -> str:
  from icmh_jax.demo import rd_points_table
  from icmh_jax.evaluation import tables
  paper = summaries["paper"]
  m = res["machine"]
  b = res["bd"]
  cmd = "python -m icmh_jax.study --out " + out + (" --quick" if quick else "")
  lines = [
      "# icmh-jax study: the paper's comparison at CPU scale", "",
      f"Produced by `{cmd}` (`make study`) on {machine_info()}, "
      f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Wall time: training "
      f"{timings['train'] / 60:.1f} min, evaluation {timings['evaluate'] / 60:.1f} min, "
      f"side by side with the PyTorch reference {timings['side_by_side'] / 60:.1f} min, total "
      f"{timings['total'] / 60:.1f} min (runs reused from an earlier call count 0 s; the training "
      f"loops of all runs logged {timings['logged'] / 60:.1f} min). "
      "The protocol was fixed before the run: `docs/study/protocol.md`.", ""]
  if quick:
    lines += ["**`--quick`: a few steps per run. This checks the pipeline; none of the numbers "
              "below measures anything.**", ""]
  lines += [
      "## What ran", "",
      f"Tiny models (`configs/*.py:tiny`: N = 32, slices of 16 channels, one block per stage, "
      f"window 4), random {plan['crop']}² crops of the 10 bundled training photos, batch "
      f"{plan['batch']}, Adam lr {plan['lr']:g} (×0.1 at 80 % of each run), clip 1.0. SA-ICM: "
      f"λ = {MACHINE_LAM}, Canny edge-masked MSE, {plan['machine_steps']} steps. Each "
      f"human-layer system and LIC-TCM: λ = {LAMS[0]} from scratch for {plan['first_steps']} "
      f"steps, then λ = {', '.join(str(l) for l in LAMS[1:])} each fine-tuned from it for "
      f"{plan['next_steps']} steps; N_a = {NA}. Evaluation: real `.icmh` files of "
      f"{paper['n_images']} held-out validation photos (central {plan['eval_crop']}² crops), never "
      "trained on; BD-rates by piecewise cubic Hermite interpolation (pchip).", "",
      "## The machine layer (SA-ICM)", "",
      f"- held-out, real bitstream: {m['bpp_machine']:.4f} bpp, PSNR on the Canny edges "
      f"{m['psnr_m_edge']:.2f} dB, on the whole image {m['psnr_m']:.2f} dB",
      f"- validation edge PSNR during training (estimate, 128² crops): {m['val_edge_psnr']:.2f} dB "
      f"at the end; before the learning-rate drop, the mean over 60-80 % of the steps is "
      f"{m['val_flattening']:+.2f} dB above the mean over 40-60 %",
      f"- criterion (held-out edge PSNR >= {MIN_EDGE_PSNR} dB, and the curve flat before the drop: "
      f"less than {FLAT_DB} dB between those means): **{'met' if m['met'] else 'not met'}**",
      f"- the machine layer leaves ‖x − x̂m‖² / ‖x − mean(x)‖² = {res['residual_energy']:.3f} of "
      "the image's energy to the human layer (from the mean whole-image machine PSNR)", "",
      "![training curves](training.png)", "",
      "## The paper's claims at this size", ""]
  if not m["met"]:
    lines += ["The machine layer did **not** meet the criterion, so the premise of the comparison "
              "(a machine layer good at what it is for) does not hold; the verdicts are reported "
              "anyway.", ""]
  lines += [
      f"A BD-rate within ±{MARGIN} % counts as no difference. Rates are the human layer's bits "
      "unless said otherwise.", "",
      f"1. FR-ICMH codes the human layer with less rate than ICMH-FF at equal PSNR (paper, "
      f"Table I, N_a = 3: −2.43 %): {verdict(*b['fr_icmh/psnr/bpp_human'])}.",
      f"2. PR-ICMH codes it with less rate than ICMH-FF (paper: −29.57 %): "
      f"{verdict(*b['pr_icmh/psnr/bpp_human'])}.",
      f"3. PR-ICMH beats FR-ICMH (the paper's ordering PR < FR < FF; PR-ICMH against FR-ICMH): "
      f"{verdict(*b['pr_vs_fr/psnr/bpp_human'])}.",
      f"4. The same in MS-SSIM: FR-ICMH vs ICMH-FF {verdict(*b['fr_icmh/ms_ssim/bpp_human'])}; "
      f"PR-ICMH vs ICMH-FF {verdict(*b['pr_icmh/ms_ssim/bpp_human'])}.",
      f"5. On the total rate (machine + human layer): FR-ICMH vs ICMH-FF "
      f"{verdict(*b['fr_icmh/psnr/bpp_total'])}; PR-ICMH vs ICMH-FF "
      f"{verdict(*b['pr_icmh/psnr/bpp_total'])}.",
      "6. Scalability costs total rate against a stand-alone LIC-TCM of the same size (Fig. 6; "
      "BD-rate of the file against LIC-TCM's, positive = more bits): "
      + "; ".join(f"{tables.SYSTEM_LABELS[s]} {_pct(b[f'{s}/vs_tcm/psnr/bpp_total'])}"
                  for s in ("icmh_ff", "fr_icmh", "pr_icmh")) + ".",
      "7. Table II (parameters of the additional model) at the study's size: "
      + "; ".join(f"{row} {counts.get(NA, 0) / 1e6:.2f} M" for row, counts in res["params"].items())
      + ". At the paper's size the counts equal Table II exactly (`icmh params`, tested).", ""]
  held = [b[k][0] for k in ("fr_icmh/psnr/bpp_human", "pr_icmh/psnr/bpp_human",
                            "pr_vs_fr/psnr/bpp_human")]
  if not all(v == v and v <= -MARGIN for v in held):
    lines += ["### What the data show where the ordering did not appear", "",
              f"- machine layer: {m['bpp_machine']:.4f} bpp, edge PSNR {m['psnr_m_edge']:.2f} dB, "
              f"whole-image PSNR {m['psnr_m']:.2f} dB; residual energy "
              f"{res['residual_energy']:.3f} (1 = the machine layer explains nothing of x)",
              "- what each human layer adds over the machine layer (PSNR range of its four points "
              "vs the machine layer's whole-image PSNR; human-layer bpp range): "
              + "; ".join(_adds(paper, s, m["psnr_m"]) for s in ("icmh_ff", "fr_icmh", "pr_icmh")),
              "- rate split (bpp machine / bpp human) per run: "
              + "; ".join(f"{k} {mb:.3f} / {hb:.3f}" for k, (mb, hb) in res["rate_split"].items()),
              ""]
  lines += [
      "## Our extension: the additional Ch-ARM also sees ŷm", "",
      "BD-rate of `residual_context=\"machine\"` against the paper's variant of the same system "
      "(negative = the extension saves rate):", "",
      "| system | PSNR, human layer | PSNR, total | MS-SSIM, human layer | MS-SSIM, total |",
      "|---|---|---|---|---|"]
  for base in EXTENSION_OF.values():
    e = res["ext"]
    lines.append(f"| {tables.SYSTEM_LABELS[base]} | " + " | ".join(
        _pct(e[f"{base}/{mt}/{rt}"]) for mt in ("psnr", "ms_ssim") for rt in ("bpp_human", "bpp_total"))
        + " |")
  tables_md = "(no paper system was run)"
  if "files" in paper:
    with open(paper["files"]["tables"]) as f:
      tables_md = f.read()
  lines += [
      "", "## RD points (means over the held-out photos; bpp from the files' bytes)", "",
      "The paper's systems and LIC-TCM:", "", rd_points_table(paper), "",
      "The extension:", "", rd_points_table(summaries["extension"]), "",
      "## Tables I and II (`eval/paper/tables.md`)", "", tables_md, "",
      "## Figures", "",
      "Fig. 6 (PSNR; dotted: our extension; dashed purple: LIC-TCM, whose only layer is its total):",
      "", "![Fig. 6](fig6_psnr.png)", "", "![Fig. 6, MS-SSIM](fig6_ms_ssim.png)", ""]
  if "fig7_psnr" in figs:
    lines += [f"Fig. 7 (one N_a = {NA} in this study):", "", "![Fig. 7](fig7_psnr.png)", ""]
  lines += side_by_side_section(compared)
  lines += ["## Not in this study", ""]
  if missing:
    lines += [f"- Not run in this call (`--variants`): {', '.join(missing)}."]
  lines += ["- N_a = 4 and 5 (the two-hour budget holds N_a = 3 only).", ""]
  path = os.path.join(out, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path


if __name__ == "__main__":
  sys.exit(main())
