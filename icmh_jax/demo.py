"""`make demo`: the end-to-end tiny study on CPU, in miniature of the paper.

Builds the bundled photo set (Canny edge maps, the named fallback mask source; SAM edge maps with
`--sam-checkpoint`), trains a tiny SA-ICM, then tiny ICMH-FF, FR-ICMH and PR-ICMH at three λ on
top of it, evaluates every model with real `.icmh` bitstreams, and writes `demo_out/`:

  report.md    what ran, Table I / Table II style tables, timings, whether the paper's ordering held
  rd.png       PSNR vs bpp (solid: human layer only, dashed: total)
  machine.png, human.png, side_by_side.png   one validation image encoded once, decoded twice
  edges.png    that image's edge map m (the mask of SA-ICM's loss)
  example.icmh the bitstream behind them
  eval/        per-image CSV, summary JSON, tables, bitstreams;  runs/   checkpoints and logs

Re-running reuses finished runs of the same config (their checkpoints) and says so; a run whose
config changed (steps, λ, mask source, ...) is trained again.

  python -m icmh_jax.demo --out demo_out [--steps 120] [--lams 0.005,0.02,0.05] [--na 3]
      [--sam-checkpoint sam_vit_b_01ec64.pth]
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time

from icmh_jax import compilation_cache, malloc_options, runs, xla_options

SYSTEMS = ("icmh_ff", "fr_icmh", "pr_icmh")
EDGE_NAMES = {"canny": "Canny", "sam": "SAM"}


@dataclasses.dataclass
class Run:
  system: str
  lam: float
  workdir: str
  seconds: float = 0.0
  reused: bool = False


def say(msg: str) -> None:
  runs.say("demo", msg)


def train(config, workdir: str, label: str, base=None) -> tuple[float, bool]:
  """`runs.train` with the demo's progress lines."""
  return runs.train(config, workdir, label, base=base, tag="demo")


def overrides(args) -> dict:
  return {"schedule.total_steps": args.steps,
          "schedule.milestones": (int(args.steps * 0.8),),
          "eval_every": args.steps, "ckpt_every": args.steps,
          "log_every": max(args.steps // 10, 1),
          # The study's evaluation codes real bitstreams for every model; the in-training
          # validation keeps to the estimate so that each run stays about a minute.
          "eval.compress_images": 0, "eval.num_batches": 1,
          "data.dir": os.path.join(args.out, "data"), "data.mask_source": args.mask_source}


def example_images(summary_entry, image, out: str, edge_label: str = "") -> dict:
  """Encodes `image` once with `entry` and decodes it twice (machine, human)."""
  import numpy as np
  from icmh_jax import imageio
  from icmh_jax.entropy import container
  entry = summary_entry
  data = entry.system.compress(entry.params, image.x)
  path = os.path.join(out, "example.icmh")
  imageio.write_bytes(path, data)
  _, layers = container.read_container(data, need_layers=(0, 1))
  h, w = image.x.shape[:2]
  bpp = {name: 8.0 * len(layers[i]) / (h * w) for i, name in enumerate(("machine", "human"))}
  bpp["total"] = 8.0 * len(data) / (h * w)
  x_m = entry.system.decompress(entry.params, data, layer="machine")
  x_h = entry.system.decompress(entry.params, data, layer="human")
  imageio.write_image(os.path.join(out, "machine.png"), x_m)
  imageio.write_image(os.path.join(out, "human.png"), x_h)
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  panels = [(image.x, "original")]
  if image.edges is not None:  # the mask m that SA-ICM's loss weights (eq. 1)
    imageio.write_image(os.path.join(out, "edges.png"), image.edges.astype(np.float32))
    panels.append((image.edges, f"edge map m ({edge_label or image.edge_source})"))
  panels += [(x_m, f"machine layer: {bpp['machine']:.3f} bpp"),
             (x_h, f"machine + human: {bpp['machine'] + bpp['human']:.3f} bpp")]
  fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.4))
  for ax, (img, title) in zip(axes, panels):
    if img.ndim == 2:
      ax.imshow(img, cmap="gray")
    else:
      ax.imshow(np.clip(img, 0, 1))
    ax.set_title(title)
    ax.axis("off")
  fig.suptitle(f"{entry.system.name}, λ = {entry.lam}: one file ({len(data)} bytes), decoded twice")
  fig.tight_layout()
  fig.savefig(os.path.join(out, "side_by_side.png"), dpi=100)
  plt.close(fig)
  return dict(system=entry.system.name, lam=entry.lam, image=image.name, bytes=len(data),
              bpp=bpp, file=path)


def dominance(test, anchor) -> str:
  """"better", "worse" or "mixed": whether every (rate, quality) point of one curve is matched or
  beaten (no more rate, no less quality) by some point of the other, `test` against `anchor`."""
  covers = lambda a, b: all(any(ra <= rb and qa >= qb for ra, qa in a) for rb, qb in b)
  if covers(test, anchor) and not covers(anchor, test):
    return "better"
  if covers(anchor, test) and not covers(test, anchor):
    return "worse"
  return "mixed"


def ordering(summary) -> tuple[bool | None, str]:
  """Whether PR-ICMH < FR-ICMH < ICMH-FF (PSNR, human-layer rate), as in the paper.

  By BD-rate vs ICMH-FF where the curves overlap in PSNR; otherwise (tiny runs often do not) by
  dominance of the RD points, which decides only where one curve lies wholly above-left of the
  other.
  """
  vals = summary["bd_rate"].get("psnr/human", {})
  bd = {s: next((v for k, v in vals.items() if k.startswith(f"{s}/") and v is not None and v == v),
                None) for s in ("fr_icmh", "pr_icmh")}
  if None not in bd.values():
    fr, pr = bd["fr_icmh"], bd["pr_icmh"]
    held = pr < fr < 0.0
    return held, (f"BD-rate vs ICMH-FF (PSNR, human layer): FR-ICMH {fr:+.2f} %, PR-ICMH "
                  f"{pr:+.2f} %. The paper's ordering PR-ICMH < FR-ICMH < ICMH-FF "
                  f"{'**was reproduced**' if held else '**was not reproduced**'} by this tiny study.")
  curves = {s: [(r["bpp_human"], r["psnr"]) for r in summary["runs"] if r["system"] == s]
            for s in SYSTEMS}
  if not all(curves.values()):
    return None, "Some system has no RD points; ordering unknown."
  fr_ff = dominance(curves["fr_icmh"], curves["icmh_ff"])
  pr_fr = dominance(curves["pr_icmh"], curves["fr_icmh"])
  pr_ff = dominance(curves["pr_icmh"], curves["icmh_ff"])
  held = (True if fr_ff == pr_fr == "better" else
          False if "worse" in (fr_ff, pr_fr) else None)
  verdict = {True: "**was reproduced**", False: "**was not reproduced**",
             None: "could not be decided"}[held]
  text = (f"BD-rate (PSNR, human layer) could not be computed for every system: the RD curves do "
          f"not overlap in PSNR. Compared point by point instead (a curve is better when each "
          f"point of the other is matched or beaten at no more rate): FR-ICMH vs ICMH-FF: "
          f"{fr_ff}; PR-ICMH vs FR-ICMH: {pr_fr}; PR-ICMH vs ICMH-FF: {pr_ff}. The paper's "
          f"ordering PR-ICMH < FR-ICMH < ICMH-FF {verdict} by this tiny study.")
  return held, text


def rd_points_table(summary) -> str:
  """One row per trained model: mean real bpp per layer (8 x file bytes / pixels) and quality."""
  rows = ["| system | N_a | λ | bpp machine | bpp human | bpp total | est. bpp total | PSNR (dB) "
          "| MS-SSIM | PSNR x̂m on edges (dB) |", "|---" * 10 + "|"]
  for r in summary["runs"]:
    cells = [r["system"], "–" if r["na"] is None else r["na"], r["lam"]] + [
        "n/a" if r[k] is None or r[k] != r[k] else f"{r[k]:.4f}" for k in
        ("bpp_machine", "bpp_human", "bpp_total", "est_bpp_total", "psnr", "ms_ssim", "psnr_m_edge")]
    rows.append("| " + " | ".join(str(c) for c in cells) + " |")
  return "\n".join(rows)


def write_report(args, trained, base: Run, summary, example, timings) -> str:
  with open(summary["files"]["tables"]) as f:
    tables_md = f.read()
  held, order_text = ordering(summary)
  lines = [
      "# icmh-jax demo: the tiny end-to-end study", "",
      "Everything below was produced by this run of `make demo` (`python -m icmh_jax.demo`) on this",
      "machine; nothing is copied in. Tiny models (configs/*.py `tiny`) on the bundled photos with",
      (f"SAM edge maps ({args.sam_checkpoint}), so" if args.mask_source == "sam" else
       "Canny edge maps (the named fallback mask source: no SAM checkpoint was given), so"),
      "the numbers show the machinery, not the paper's quality.", "",
      "## What ran", "",
      f"- data: bundled photos (scikit-image, scikit-learn, matplotlib samples) with "
      f"{EDGE_NAMES[args.mask_source]} edge maps in `{args.out}/data`",
      f"- SA-ICM (machine codec, λ = {base.lam}, edge-masked MSE): {args.steps} steps, "
      + ("reused" if base.reused else f"{base.seconds:.0f} s"),
  ]
  for r in trained:
    lines.append(f"- {r.system} (N_a = {args.na}, λ = {r.lam}) over the frozen SA-ICM: {args.steps} "
                 f"steps, " + ("reused" if r.reused else f"{r.seconds:.0f} s"))
  lines += [f"- evaluation with real bitstreams on {summary['n_images']} validation images: "
            f"{timings['evaluate']:.0f} s", f"- total: {timings['total']:.0f} s", "",
            "## Result", "", order_text, "",
            "## RD points (means over the validation images; bpp from the files' bytes)", "",
            rd_points_table(summary), "",
            "## Tables", "", tables_md, "",
            "## One image, one file, two decodes", "",
            f"`{example['file']}` ({example['bytes']} bytes, {example['system']}, λ = {example['lam']}): "
            f"machine layer {example['bpp']['machine']:.4f} bpp, human layer "
            f"{example['bpp']['human']:.4f} bpp, whole file {example['bpp']['total']:.4f} bpp.", "",
            "![side by side](side_by_side.png)", "", "![RD](rd.png)", ""]
  path = os.path.join(args.out, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path


def main(argv=None) -> int:
  if argv is None:  # run from the command line
    malloc_options.reexec()
  p = argparse.ArgumentParser(prog="python -m icmh_jax.demo", description=__doc__.splitlines()[0])
  p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
  p.add_argument("--steps", type=int, default=120, help="training steps per model")
  p.add_argument("--lams", default="0.005,0.02,0.05", help="λ of the human-layer codecs")
  p.add_argument("--na", type=int, default=3, help="N_a, slices of the additional codec")
  p.add_argument("--images", type=int, default=0, help="validation images to evaluate (0: all)")
  p.add_argument("--crop", type=int, default=256, help="central crop of the evaluation images")
  p.add_argument("--sam-checkpoint", default="",
                 help="SAM .pth (or .npz of its state_dict): SAM edge maps instead of Canny")
  p.add_argument("--sam-model", choices=("vit_b", "vit_l", "vit_h"),
                 help="SAM size (default: from the checkpoint's file name)")
  args = p.parse_args(argv)
  compilation_cache.enable()
  xla_options.for_training()
  args.mask_source = "sam" if args.sam_checkpoint else "canny"
  try:
    lams = [float(v) for v in args.lams.split(",") if v.strip()]
  except ValueError:
    p.error(f"--lams {args.lams!r}: give comma-separated numbers, e.g. 0.005,0.02,0.05")
  if len(lams) < 2:
    p.error("--lams: give at least two λ (one RD point per λ; BD-rate needs a curve)")
  if args.steps < 1 or args.crop < 160 or args.images < 0:
    p.error("need --steps >= 1, --crop >= 160 (MS-SSIM's minimum) and --images >= 0")
  from icmh_jax.errors import IcmhError
  try:
    return study(args, lams)
  except IcmhError as e:
    print(f"demo: error: {e}", file=sys.stderr)
    return 1


def study(args, lams) -> int:
  """The tiny study of `main`'s parsed arguments."""
  os.makedirs(args.out, exist_ok=True)
  import jax
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.ERROR)  # Orbax's per-restore notices drown the bars
  # Runs that differ only in λ compile to the same step (λ is an argument): share it on disk.
  jax.config.update("jax_compilation_cache_dir", os.path.join(args.out, "jax_cache"))
  from icmh_jax.data import bundled
  from icmh_jax.evaluation import images as images_lib, rd
  t_all = time.perf_counter()
  say(f"building the bundled data set (photos + {EDGE_NAMES[args.mask_source]} edge maps)")
  bundled.prepare(os.path.join(args.out, "data"), args.mask_source, progress=True,
                  sam_checkpoint=args.sam_checkpoint, sam_model=args.sam_model)

  runs_dir = os.path.join(args.out, "runs")
  base_cfg = runs.load_config("sa_icm", "tiny", **overrides(args))
  base = Run("sa_icm", float(base_cfg.loss.lam), os.path.join(runs_dir, "sa_icm"))
  # Every config first: a bad knob (N_a, λ) fails here, not after minutes of training.
  todo = [(Run(system, lam, os.path.join(runs_dir, f"{system}_na{args.na}_lam{lam}")),
           runs.load_config(system, f"tiny,na={args.na},lam={lam}",
                            base_checkpoint=base.workdir, **overrides(args)))
          for system in SYSTEMS for lam in lams]
  base.seconds, base.reused = train(base_cfg, base.workdir, "SA-ICM")
  trained = []
  for run, cfg in todo:
    run.seconds, run.reused = train(cfg, run.workdir, f"{run.system} λ={run.lam}", base=base_cfg)
    trained.append(run)

  say("evaluating every model with real bitstreams")
  t = time.perf_counter()
  # One crop size for every image: each system's coder then compiles once, not once per shape.
  images = images_lib.load_images("bundled", data_dir=os.path.join(args.out, "data"),
                                  split="validation", edges=args.mask_source, crop=args.crop,
                                  limit=args.images or None)
  entries = rd.load_entries([r.workdir for r in trained])
  # pchip: three λ give three RD points per curve, too few for the classic cubic fit.
  summary = rd.evaluate_systems(entries, images, os.path.join(args.out, "eval"), method="pchip")
  timings = {"evaluate": time.perf_counter() - t}
  fig = summary["files"].get("fig6_psnr")
  if fig:
    shutil.copyfile(fig, os.path.join(args.out, "rd.png"))
  pick = next(e for e in entries if e.system.name == "fr_icmh")
  example = example_images(pick, images[0], args.out, EDGE_NAMES[args.mask_source])
  timings["total"] = time.perf_counter() - t_all
  report = write_report(args, trained, base, summary, example, timings)
  with open(os.path.join(args.out, "demo.json"), "w") as f:
    json.dump(dict(runs=[dataclasses.asdict(r) for r in [base] + trained], example=example,
                   timings=timings, ordering=ordering(summary)[0]), f, indent=1)
  say(f"done in {timings['total']:.0f} s: {report}")
  print(open(report).read())
  return 0


if __name__ == "__main__":
  sys.exit(main())
