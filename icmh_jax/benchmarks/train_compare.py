"""LIC-TCM trained side by side with the PyTorch reference: same initial weights, same batches.

  python -m icmh_jax.benchmarks.train_compare --torch-reference DIR --out DIR \
      [--steps 300] [--N 32] [--batch 4] [--crop 256] [--seed 0] [--control]

Ours is the `tcm` system at width N (M = 320 in 5 slices, as the config), fresh params, trained
through the real sharded train step (`train.step.make_train_step`); the reference is LIC_TCM's
`TCM` with those params converted (`convert.tcm.to_reference`), trained in a spawned child by
`torch_reference.train_curves`. The recipe is LIC_TCM train.py's: loss = bpp + λ·255²·mse,
gradients clipped at 1.0, Adam 1e-4 (main) and 1e-3 (the factorized prior's quantiles), here at a
constant learning rate (no milestone within the run). Both sides draw the same `Batches`: random
crops of the bundled train photos from numpy's default_rng(seed), each side hashing what it was
fed. The crop is 256² by default, the smallest the reference trains on: its hyper-analysis needs
sides that are multiples of 128 and its Ch-ARM's 8x8 windows break at 128² (y is then 8x8).

By default both sides also add the same training noise: the reference is fed, step by step, the
U(-½, ½) noise our train step drew (`SharedNoise`, `torch_reference._NoiseFeed`), so the two run
the same computation and differ only in float arithmetic (step 1: the same loss to float32
tolerance; the summary prints it). `--noise own` lets each side draw its own noise (then single
steps differ and only curves compare). The claim is about curves: the relative gap of the means of
loss, bpp and mse over the last `window` steps, within `TOLERANCE`. `--control` also trains the
reference with noise of its own (torch.manual_seed(seed), or seed + 1 under `--noise own`; same
weights and batches): the gap noise alone opens between two runs of the same code, i.e. why a
port that draws its own noise cannot be held to 2 % over 300 steps. Writes
DIR/train_compare.json (config, machine, per-step curves and seconds of each side, the gaps) and
DIR/train_compare.png (`plot`). A rerun with the same work (steps, N, batch, crop, seed, λ,
noise) reuses the sides already in DIR/train_compare.json and trains only what is missing (e.g.
the control).
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

import numpy as np

from icmh_jax import malloc_options
from icmh_jax.benchmarks import harness, torch_reference
from icmh_jax.errors import ConfigError, IcmhError

TOLERANCE = 0.02  # the issue's goal for the gap of the last `window` steps' means
METRICS = ("loss", "bpp", "mse")
WORK = ("steps", "N", "batch", "crop", "seed", "lam", "noise")  # what a reuse must match
NOISE = ("shared", "own")
AGREE = 1e-3  # relative loss gap up to which two runs' steps count as the same computation


@dataclasses.dataclass(frozen=True)
class Batches:
  """The run's batches: `steps` uint8 [batch, crop, crop, 3] arrays of random crops (and flips,
  `pipeline.crop_and_flip`) of the bundled train photos, photo and window drawn from numpy's
  default_rng(seed). Iterating again, in any process, yields the same pixels; the reference's
  child unpickles this and redraws them."""
  steps: int
  batch: int
  crop: int
  seed: int

  def __len__(self):
    return self.steps

  def __iter__(self):
    from icmh_jax.data import bundled, pipeline
    records = [dict(image=im, edges=np.zeros(im.shape[:2], bool))
               for im in (bundled.load_photo(*p) for p in bundled.TRAIN)]
    rng = np.random.default_rng(self.seed)
    for _ in range(self.steps):
      crops = [pipeline.crop_and_flip(records[rng.integers(len(records))], rng, self.crop)
               for _ in range(self.batch)]
      yield np.stack([c["image"] for c in crops])


def run_key(seed: int):
  """The PRNG key our side's train step runs with (its noise: `step.training_noise`)."""
  import jax
  return jax.random.key(seed + 1)


@dataclasses.dataclass(frozen=True)
class SharedNoise:
  """The noise our train step draws, step by step, for the reference to add (`draw_noise` writes
  it; the reference's child memory-maps it): yields {"y": [B, h, w, M], "z": [B, h', w', C]}
  float32 per step."""
  y_path: str
  z_path: str

  def __len__(self):
    return len(np.load(self.y_path, mmap_mode="r"))

  def __iter__(self):
    y, z = np.load(self.y_path, mmap_mode="r"), np.load(self.z_path, mmap_mode="r")
    for s in range(len(y)):
      yield {"y": np.array(y[s]), "z": np.array(z[s])}


def draw_noise(system, seed: int, steps: int, batch: int, crop: int, directory) -> SharedNoise:
  """Writes the noise of `steps` train steps of `batch` x crop² (`step.training_noise` with
  `run_key(seed)`, examples 0..batch-1) to directory/noise_{y,z}.npy."""
  import jax
  import jax.numpy as jnp
  from numpy.lib.format import open_memmap
  from icmh_jax.train import step as step_lib
  shapes = system.noise_shapes((crop, crop, 3))
  key = run_key(seed)
  draw = jax.jit(lambda s: step_lib.training_noise(shapes, key, s, jnp.arange(batch)))
  paths = {k: os.path.join(directory, f"noise_{k}.npy") for k in shapes}
  files = {k: open_memmap(paths[k], "w+", np.float32, (steps, batch, *shapes[k])) for k in shapes}
  for s in range(steps):
    for k, v in jax.device_get(draw(s)).items():
      files[k][s] = v
  for f in files.values():
    f.flush()
  return SharedNoise(paths["y"], paths["z"])


def make_config(N: int, batch: int, crop: int, steps: int, lam: float, seed: int):
  """configs/tcm.py at width N and λ, with the batch shape, seed and a constant learning rate."""
  from icmh_jax import config_files
  return config_files.load(
      config_files.family_spec("tcm", f"N={N},lam={lam}"),
      {"data.batch_size": batch, "data.crop": crop, "seed": seed,
       "schedule.total_steps": steps, "schedule.milestones": ()})


def train_ours(system, config, params, batches) -> dict:
  """Trains `params` on `batches` with the sharded train step, one step per batch.

  Returns:
    dict(loss, bpp, mse, step_s, digests: one per step; wall_s, peak_rss_bytes). The first
    step_s includes the compile.
  """
  import jax
  from tqdm import tqdm
  from icmh_jax.train import loop, optim, step as step_lib
  start = time.perf_counter()
  mesh = step_lib.make_mesh()
  state = jax.jit(lambda p: optim.create_train_state(p, system.trainable_key()))(
      step_lib.replicate(params, mesh))
  key_data = jax.device_get(jax.random.key_data(run_key(config.seed)))
  key = jax.random.wrap_key_data(step_lib.replicate(key_data, mesh))
  train_step = step_lib.make_train_step(mesh, system=system, config=config)
  sharding, bpp = step_lib.batch_sharding(mesh), f"bpp/{system.trained_layer}"
  curves = {k: [] for k in (*METRICS, "step_s", "digests")}
  for u8 in tqdm(batches, desc="ours", unit="step", file=sys.stderr, dynamic_ncols=True):
    t = time.perf_counter()
    state, metrics = train_step(state, loop.global_batch({"image": u8}, sharding), key)
    metrics = jax.device_get(metrics)
    curves["step_s"].append(time.perf_counter() - t)
    for k, name in zip(METRICS, ("loss", bpp, "mse")):
      curves[k].append(float(metrics[name]))
    curves["digests"].append(harness.digest(u8))
  return dict(**curves, wall_s=time.perf_counter() - start, peak_rss_bytes=harness.peak_rss_bytes())


def gap(ours: dict, reference: dict, window: int) -> dict:
  """The relative gap of the means of each metric over the last `window` steps.

  Args:
    ours, reference: {metric: [value per step]} for each of `METRICS`, of equal lengths.
    window: steps at the end to average (1 <= window <= steps).
  Returns:
    {metric: dict(ours, reference, relative = ours / reference - 1, within = |relative| <=
    TOLERANCE)}.
  """
  out = {}
  for k in METRICS:
    if not 1 <= window <= min(len(ours[k]), len(reference[k])):
      raise ConfigError(f"gap window {window} must be between 1 and the steps run "
                        f"({len(ours[k])} ours, {len(reference[k])} reference)")
    o, r = float(np.mean(ours[k][-window:])), float(np.mean(reference[k][-window:]))
    rel = o / r - 1.0
    out[k] = dict(ours=o, reference=r, relative=rel, within=bool(abs(rel) <= TOLERANCE))
  return out


def agreement(test: dict, reference: dict, tol: float = AGREE) -> int:
  """Steps, from the first, over which every step's loss of `test` is within `tol` (relative) of
  `reference`'s: how long two runs stay one computation before their differences grow (float
  rounding, or other noise) and the trajectories part."""
  rel = np.abs(np.asarray(test["loss"], float) / np.asarray(reference["loss"], float) - 1.0)
  apart = np.nonzero(~(rel <= tol))[0]
  return int(apart[0]) if apart.size else len(rel)


def moving_average(values, n: int) -> np.ndarray:
  """Trailing mean over up to `n` values (the first points average what exists so far)."""
  c = np.cumsum(np.concatenate([[0.0], np.asarray(values, float)]))
  i = np.arange(1, len(values) + 1)
  return (c[i] - c[np.maximum(i - n, 0)]) / np.minimum(i, n)


def plot(result: dict, path: str) -> None:
  """Two panels, rate (bpp) and distortion (PSNR of the mse), both sides: each step faint and a
  moving average over steps/20 (at least 1) solid."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  steps = len(result["ours"]["loss"])
  n = max(1, steps // 20)
  shared = result["config"].get("noise") == "shared"
  labels = {"ours": "ours (JAX)",
            "reference": "PyTorch reference" + (", fed our noise" if shared else ""),
            "control": "PyTorch reference, " + ("its own noise" if shared else "other noise")}
  colors = {"ours": "tab:blue", "reference": "tab:orange", "control": "tab:gray"}
  for side in (s for s in labels if s in result):
    curves, color = result[side], colors[side]
    psnr = -10 * np.log10(np.maximum(np.asarray(curves["mse"]), 1e-10))
    for ax, values in zip(axes, (np.asarray(curves["bpp"]), psnr)):
      x = np.arange(1, steps + 1)
      ax.plot(x, values, color=color, alpha=0.25, lw=0.8)
      ax.plot(x, moving_average(values, n), color=color, lw=1.8,
              label=f"{labels[side]}, mean of {n}")
  c = result["config"]
  for ax, name in zip(axes, ("rate: bpp", "distortion: PSNR (dB) of the training mse")):
    ax.set_xlabel("step")
    ax.set_title(name)
    ax.grid(alpha=0.3)
  axes[0].legend()
  fig.suptitle(f"LIC-TCM N={c['N']}, batch {c['batch']} x {c['crop']}², λ={c['lam']}, "
               f"same initial weights and batches" + (" and noise" if shared else ""))
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def compare(reference_dir, out_dir, *, steps: int = 300, N: int = 32, batch: int = 4,
            crop: int = 256, seed: int = 0, lam: float = 0.013, window: int = 100,
            torch_threads: int | None = None, control: bool = False,
            noise: str = "shared") -> dict:
  """Trains both sides (and the control), writes out_dir/train_compare.json and .png, returns
  the JSON's dict. Sides already in out_dir/train_compare.json for the same `WORK` are reused;
  each side is written there as soon as it is trained, so a stopped run loses only the side it
  was training.
  `noise`: "shared" (the reference adds the noise our step drew) or "own" (`NOISE`)."""
  if steps < 1 or not 1 <= window <= steps:
    raise ConfigError(f"--steps must be >= 1 and --window between 1 and --steps (the gap is "
                      f"taken over the last --window steps), got steps {steps}, window {window}")
  if noise not in NOISE:
    raise ConfigError(f"--noise must be one of {', '.join(NOISE)}, got {noise!r}")
  torch_reference.check_train_shape(batch, crop)
  torch_reference.load_reference(reference_dir)  # missing torch / checkout: fail before training
  os.makedirs(out_dir, exist_ok=True)
  import jax
  from icmh_jax.convert import tcm as convert_tcm
  from icmh_jax.models import registry
  from icmh_jax.train import loop
  config = make_config(N, batch, crop, steps, lam, seed)
  system = registry.get_system(config.system, config.model)
  params = loop.fresh_params(system, config)
  batches = Batches(steps, batch, crop, seed)
  m, o = config.model, config.optim
  knobs = dict(lam=float(config.loss.lam), clip_norm=o.clip_norm, lr=o.lr, aux_lr=o.aux_lr)
  control_seed = seed if noise == "shared" else seed + 1
  settings = dict(steps=steps, N=N, M=m.M, num_slices=m.num_slices_m, batch=batch, crop=crop,
                  seed=seed, noise=noise, control_seed=control_seed, window=window,
                  tolerance=TOLERANCE, torch_threads=torch_threads, model=m.to_dict(), **knobs)
  path = os.path.join(out_dir, "train_compare.json")
  done = _reusable(path, settings)

  def reference_run(torch_seed, fed=None):
    return torch_reference.isolated(
        "train_curves", directory=str(reference_dir), N=m.N_machine, M=m.M,
        num_slices=m.num_slices_m, batches=batches, seed=torch_seed, threads=torch_threads,
        state_dict=convert_tcm.to_reference(jax.device_get(params["base"])), noise=fed, **knobs)

  # Each side is saved as soon as it is trained: a run stopped later keeps it for the rerun.
  sides = dict(done)  # the reused sides and machine (`_reusable`)
  sides.setdefault("machine", harness.machine_info())

  def save(side, curves):
    sides[side] = curves
    _write_json(path, dict(config=settings, **sides))
    return curves

  ours = sides.get("ours") or save("ours", train_ours(system, config, params, batches))
  reference = sides.get("reference")
  if reference is None and noise == "own":
    reference = save("reference", reference_run(seed))
  elif reference is None:
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
      reference = save("reference",
                       reference_run(seed, draw_noise(system, seed, steps, batch, crop, tmp)))
  result = dict(config=settings, machine=sides["machine"], ours=ours, reference=reference,
                same_batches=ours["digests"] == reference["digests"],
                first_step={k: dict(ours=ours[k][0], reference=reference[k][0],
                                    relative=ours[k][0] / reference[k][0] - 1.0)
                            for k in METRICS},
                gap=gap(ours, reference, window), agree_steps=agreement(ours, reference))
  if control or "control" in sides:
    result["control"] = sides.get("control") or save("control", reference_run(control_seed))
    result["control_gap"] = gap(result["control"], reference, window)
    result["control_agree_steps"] = agreement(result["control"], reference)
  _write_json(path, result)
  plot(result, os.path.join(out_dir, "train_compare.png"))
  return result


def _write_json(path, doc: dict) -> None:
  with open(path, "w") as f:
    json.dump(doc, f, indent=1)


def _reusable(path, settings) -> dict:
  """The trained sides of the result at `path` when it ran the same `WORK`, else {}."""
  try:
    with open(path) as f:
      previous = json.load(f)
  except (OSError, ValueError):
    return {}
  if any(previous.get("config", {}).get(k) != settings[k] for k in WORK):
    return {}
  return {k: previous[k] for k in ("ours", "reference", "control", "machine") if k in previous}


def summary(result: dict) -> str:
  """Human-readable lines: sides' seconds per step, whether the batches matched, the gap."""
  c = result["config"]
  lines = [f"LIC-TCM N={c['N']}, {c['steps']} steps of {c['batch']} x {c['crop']}², "
           f"same batches: {'yes' if result['same_batches'] else 'NO'}"]
  for side in (s for s in ("ours", "reference", "control") if s in result):
    s = result[side]["step_s"]
    median = float(np.median(s[1:] if len(s) > 1 else s))
    lines.append(f"  {side:9s} {result[side]['wall_s']:8.1f} s wall, {median:.2f} s/step "
                 f"(median after the first)")
  shared = c.get("noise", "own") == "shared"
  lines.append("training noise: " + ("shared (the reference adds the noise our step drew)"
                                     if shared else "each side draws its own"))
  if "first_step" in result:
    lines.append("step 1 (same weights and batch" + (" and noise" if shared else "") + "):")
    for k, g in result["first_step"].items():
      lines.append(f"  {k:4s} ours {g['ours']:.8g}  reference {g['reference']:.8g}  "
                   f"{g['relative']:+.2e}")
  if "agree_steps" in result:
    control = (f" (the control with its own noise: {result['control_agree_steps']})"
               if "control_agree_steps" in result else "")
    lines.append(f"steps from the first with the losses within {AGREE:.1%} of the reference's: "
                 f"ours {result['agree_steps']}{control}")
  lines.append(f"gap over the last {c['window']} steps (ours / reference - 1; goal "
               f"within {c['tolerance']:.0%}):")
  for k, g in result["gap"].items():
    lines.append(f"  {k:4s} ours {g['ours']:.6g}  reference {g['reference']:.6g}  "
                 f"{g['relative']:+.2%}  {'within' if g['within'] else 'OUTSIDE'}")
  if "control" in result:
    torch_seed = c.get("control_seed", c["seed"] + 1)
    lines.append(f"control: the reference again with noise of its own (torch seed {torch_seed}), "
                 f"against the reference (what noise alone does to the gap):")
    for k, g in result["control_gap"].items():
      lines.append(f"  {k:4s} own noise {g['ours']:.6g}  reference {g['reference']:.6g}  "
                   f"{g['relative']:+.2%}  {'within' if g['within'] else 'OUTSIDE'}")
  return "\n".join(lines)


def main(argv=None) -> int:
  if argv is None:  # run from the command line
    malloc_options.reexec()
  p = argparse.ArgumentParser(prog="python -m icmh_jax.benchmarks.train_compare",
                              description=__doc__.split("\n")[0])
  p.add_argument("--torch-reference", metavar="DIR", required=True,
                 help="a LIC_TCM checkout (torch, compressai, timm, einops installed)")
  p.add_argument("--out", required=True, help="folder for train_compare.json and .png")
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--window", type=int, default=100, help="last steps the gap averages")
  p.add_argument("--N", type=int, default=32, help="transform width N")
  p.add_argument("--batch", type=int, default=4)
  p.add_argument("--crop", type=int, default=256, help="square crop side (x128, >= 256)")
  p.add_argument("--seed", type=int, default=0, help="initial weights and batches")
  p.add_argument("--lam", type=float, default=0.013, help="λ (LIC-TCM's middle rate)")
  p.add_argument("--torch-threads", type=int, default=None,
                 help="torch CPU threads (default: every usable core)")
  p.add_argument("--noise", choices=NOISE, default="shared",
                 help="shared: the reference adds the training noise our step drew (the same "
                      "computation on both sides); own: each side draws its own")
  p.add_argument("--control", action="store_true",
                 help="also train the reference with noise of its own: the gap noise alone "
                      "opens")
  args = p.parse_args(argv)
  from icmh_jax import compilation_cache, xla_options
  compilation_cache.enable()  # a rerun does not compile the train step again
  xla_options.for_training()
  try:
    result = compare(args.torch_reference, args.out, steps=args.steps, N=args.N,
                     batch=args.batch, crop=args.crop, seed=args.seed, lam=args.lam,
                     window=args.window, torch_threads=args.torch_threads,
                     control=args.control, noise=args.noise)
  except IcmhError as e:
    print(f"train_compare: error: {e}", file=sys.stderr)
    return 1
  print(summary(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())
