"""bfloat16 against float32 training: a tiny LIC-TCM from the same weights on the same batches.

  python -m icmh_jax.benchmarks.precision_curve --out DIR [--steps 200] [--window 20]
      [--batch 2] [--crop 128] [--seed 0]

Trains `configs/tcm.py:tiny=True` (constant learning rate) from the same weights on the batches
of `train_compare.Batches`, through the real sharded train step, three times:
  float32; bfloat16 (`compute_dtype`; params, gradients and Adam stay float32) with the same
  training noise (float32 in both: `step.training_noise`); and a control, float32 with other
  noise draws.
The claim is about the curves: the loss of bfloat16 averaged over each run of `window`
consecutive steps stays within `TOLERANCE` of float32's. The control says how far two float32
runs drift apart from the noise alone (the trajectories are chaotic), i.e. what the tolerance can
resolve at this batch size. Writes DIR/precision_curve.json (config, machine, per-step curves and
seconds, per-window gaps of both comparisons) and DIR/precision_curve.png; exits 1 when a window
of bfloat16 is outside the tolerance.
"""

import argparse
import json
import os
import sys

import numpy as np

from icmh_jax import malloc_options
from icmh_jax.benchmarks import harness, train_compare
from icmh_jax.errors import ConfigError, IcmhError

TOLERANCE = 0.02
# run -> (compute dtype, noise seed offset); every run starts from the same weights and batches.
RUNS = {"float32": ("float32", 0), "bfloat16": ("bfloat16", 0), "control": ("float32", 1)}


def make_config(steps: int, batch: int, crop: int, seed: int, dtype: str):
  """configs/tcm.py:tiny=True at a constant learning rate; `seed` keys the training noise."""
  from icmh_jax import config_files
  return config_files.load(
      config_files.family_spec("tcm", "tiny=True"),
      {"data.batch_size": batch, "data.crop": crop, "seed": seed, "compute_dtype": dtype,
       "schedule.total_steps": steps, "schedule.milestones": ()})


def window_gaps(test, reference, window: int) -> list[dict]:
  """Relative gaps of the means over consecutive windows of `window` steps.

  Args:
    test, reference: per-step values of equal length (a last partial window is dropped).
  Returns:
    one dict(first, last (1-based steps), test, reference, relative = test / reference - 1,
    within = |relative| <= TOLERANCE) per window.
  """
  if not 1 <= window <= min(len(test), len(reference)):
    raise ConfigError(f"window {window} must be between 1 and the steps run ({len(test)})")
  n = min(len(test), len(reference)) // window
  out = []
  for i in range(n):
    t = float(np.mean(test[i * window:(i + 1) * window]))
    r = float(np.mean(reference[i * window:(i + 1) * window]))
    rel = t / r - 1.0
    out.append(dict(first=i * window + 1, last=(i + 1) * window, test=t, reference=r,
                    relative=rel, within=bool(abs(rel) <= TOLERANCE)))
  return out


def compare(out_dir, *, steps: int = 200, window: int = 20, batch: int = 2, crop: int = 128,
            seed: int = 0) -> dict:
  """Trains both dtypes, writes out_dir/precision_curve.json and .png, returns the JSON's dict."""
  if steps < 1 or not 1 <= window <= steps:
    raise ConfigError(f"--steps must be >= 1 and --window between 1 and --steps, got steps "
                      f"{steps}, window {window}")
  if crop % 64:
    raise ConfigError(f"--crop must be a multiple of 64 (the codec's padding), got {crop}")
  os.makedirs(out_dir, exist_ok=True)
  from icmh_jax.models import registry
  from icmh_jax.train import loop
  configs = {run: make_config(steps, batch, crop, seed + offset, dtype)
             for run, (dtype, offset) in RUNS.items()}
  system = registry.get_system("tcm", configs["float32"].model)
  params = loop.fresh_params(system, configs["float32"])
  batches = train_compare.Batches(steps, batch, crop, seed)
  curves = {run: train_compare.train_ours(system, configs[run], params, batches) for run in RUNS}
  gaps = lambda run: {k: window_gaps(curves[run][k], curves["float32"][k], window)
                      for k in train_compare.METRICS}
  base = configs["float32"]
  result = dict(
      config=dict(steps=steps, window=window, batch=batch, crop=crop, seed=seed, runs=RUNS,
                  tolerance=TOLERANCE, model=base.model.to_dict(), lam=float(base.loss.lam),
                  lr=float(base.optim.lr)),
      machine=harness.machine_info(), curves=curves,
      same_batches=len({tuple(c["digests"]) for c in curves.values()}) == 1,
      gaps=gaps("bfloat16"), control_gaps=gaps("control"))
  result["within"] = all(g["within"] for g in result["gaps"]["loss"])
  with open(os.path.join(out_dir, "precision_curve.json"), "w") as f:
    json.dump(result, f, indent=1)
  plot(result, os.path.join(out_dir, "precision_curve.png"))
  return result


def plot(result: dict, path: str) -> None:
  """Loss per step (faint) and per-window means (solid) of both dtypes, and the window gaps."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, (ax, gx) = plt.subplots(1, 2, figsize=(11, 4))
  colors = {"float32": "tab:blue", "bfloat16": "tab:orange", "control": "tab:gray"}
  for run, color in colors.items():
    loss = result["curves"][run]["loss"]
    ax.plot(np.arange(1, len(loss) + 1), loss, color=color, alpha=0.2, lw=0.8)
  gaps, control = result["gaps"]["loss"], result["control_gaps"]["loss"]
  mid = np.array([(g["first"] + g["last"]) / 2 for g in gaps])
  ax.plot(mid, [g["reference"] for g in gaps], "o-", color=colors["float32"], label="float32")
  ax.plot(mid, [g["test"] for g in gaps], "o-", color=colors["bfloat16"], label="bfloat16")
  ax.plot(mid, [g["test"] for g in control], "o-", color=colors["control"],
          label="float32, other noise")
  ax.set(xlabel="step", ylabel="loss", title="training loss (window means solid)")
  ax.legend()
  w = 0.4 * result["config"]["window"]
  gx.bar(mid - w / 2, [100 * g["relative"] for g in gaps], width=w, color=colors["bfloat16"],
         label="bfloat16")
  gx.bar(mid + w / 2, [100 * g["relative"] for g in control], width=w, color=colors["control"],
         label="float32, other noise")
  gx.legend()
  tol = 100 * result["config"]["tolerance"]
  for y in (-tol, tol):
    gx.axhline(y, color="k", ls="--", lw=0.8)
  gx.set(xlabel="step", ylabel="%", title="window means / float32's - 1")
  for a in (ax, gx):
    a.grid(alpha=0.3)
  c = result["config"]
  fig.suptitle(f"tiny LIC-TCM, batch {c['batch']} x {c['crop']}², λ={c['lam']}, lr {c['lr']}, "
               f"same initial weights and batches")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def summary(result: dict) -> str:
  c = result["config"]
  lines = [f"tiny LIC-TCM, {c['steps']} steps of {c['batch']} x {c['crop']}², same batches: "
           f"{'yes' if result['same_batches'] else 'NO'}"]
  for run, curves in result["curves"].items():
    s = curves["step_s"]
    lines.append(f"  {run:9s} {curves['wall_s']:7.1f} s wall, "
                 f"{float(np.median(s[1:] if len(s) > 1 else s)):.3f} s/step (median after the first)")
  lines.append(f"loss, mean of each {c['window']}-step window / float32's - 1 (goal for bfloat16: "
               f"within {c['tolerance']:.0%}; the control is float32 with other noise draws):")
  for g, k in zip(result["gaps"]["loss"], result["control_gaps"]["loss"]):
    lines.append(f"  steps {g['first']:4d}-{g['last']:<4d} float32 {g['reference']:.5g}  "
                 f"bfloat16 {g['test']:.5g} {g['relative']:+7.2%} "
                 f"{'within ' if g['within'] else 'OUTSIDE'}  control {k['relative']:+7.2%}")
  lines.append("every window within" if result["within"] else "a window is OUTSIDE the tolerance")
  return "\n".join(lines)


def main(argv=None) -> int:
  if argv is None:  # run from the command line
    malloc_options.reexec()
  p = argparse.ArgumentParser(prog="python -m icmh_jax.benchmarks.precision_curve",
                              description=__doc__.split("\n")[0])
  p.add_argument("--out", required=True, help="folder for precision_curve.json and .png")
  p.add_argument("--steps", type=int, default=200)
  p.add_argument("--window", type=int, default=20, help="steps each compared mean averages")
  p.add_argument("--batch", type=int, default=2)
  p.add_argument("--crop", type=int, default=128, help="square crop side (a multiple of 64)")
  p.add_argument("--seed", type=int, default=0, help="initial weights and batches")
  args = p.parse_args(argv)
  from icmh_jax import compilation_cache, xla_options
  compilation_cache.enable()
  xla_options.for_training()
  try:
    result = compare(args.out, steps=args.steps, window=args.window, batch=args.batch,
                     crop=args.crop, seed=args.seed)
  except IcmhError as e:
    print(f"precision_curve: error: {e}", file=sys.stderr)
    return 1
  print(summary(result))
  return 0 if result["within"] else 1


if __name__ == "__main__":
  sys.exit(main())
