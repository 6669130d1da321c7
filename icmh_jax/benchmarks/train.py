"""`icmh bench train`: one training step (batch x crop², default 8 x 256²) — compile time apart
(split into JAX's tracing, lowering and XLA compile or cache load: first_step_*_s),
median step time and images/s, on every local device through the real sharded train step.
--torch-reference DIR also times LIC_TCM's PyTorch step on the same batch (torch_* keys, speedup =
torch step seconds / JAX step seconds)."""

import argparse

HELP = "train step time at batch 8 x 256² (compile apart) and images/s"


def add_arguments(p):
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--config", help="config file with knobs, e.g. configs/tcm.py:tiny")
  src.add_argument("--model", help="a system name (its configs/<model>.py with default knobs)")
  p.add_argument("--N", type=int, default=None, help="transform width N (N_machine: tcm, sa_icm)")
  p.add_argument("--batch", type=int, default=8, help="global batch size")
  p.add_argument("--crop", type=int, default=256, help="square crop side")
  p.add_argument("--compute-dtype", default=None, choices=("float32", "bfloat16"))
  p.add_argument("--remat", action=argparse.BooleanOptionalAction, default=None,
                 help="recompute ConvTransBlocks (or their Swin branch) in the backward "
                      "(config.remat; default: on for N >= 128)")
  p.add_argument("--remat-scope", choices=("block", "transformer"), default=None,
                 help="what --remat recomputes: whole ConvTransBlocks or their Swin branch "
                      "(config.remat_scope; default: transformer)")
  p.add_argument("--torch-reference", metavar="DIR", default=None,
                 help="also time the PyTorch LIC-TCM checkout at DIR on the same batch (tcm only)")
  p.add_argument("--torch-threads", type=int, default=None,
                 help="torch CPU threads for --torch-reference (default: every usable core)")


def _config(args):
  from icmh_jax import config_files
  config = config_files.load(args.config or config_files.family_spec(args.model))
  if args.N is not None:
    config.model["N" if "N" in config.model else "N_machine"] = args.N  # the trained codec's
  config.data.batch_size, config.data.crop = args.batch, args.crop
  if args.compute_dtype:
    config.compute_dtype = args.compute_dtype
  if args.remat is not None:
    config.remat = args.remat
  if args.remat_scope:
    config.remat_scope = args.remat_scope
  return config


def _torch_reference_knobs(args, config) -> dict | None:
  """The reference TCM's sizes and loss knobs for --torch-reference (checked before JAX runs)."""
  if not args.torch_reference:
    return None
  from icmh_jax.benchmarks import torch_reference
  from icmh_jax.errors import ConfigError
  if config.system != "tcm":
    raise ConfigError(f"--torch-reference times LIC-TCM only (system tcm), got {config.system!r}")
  torch_reference.load_reference(args.torch_reference)
  return dict(N=config.model["N_machine"], M=config.model["M"], num_slices=config.model["num_slices_m"],
              lam=config.loss.lam, clip_norm=config.optim.clip_norm, lr=config.optim.lr,
              aux_lr=config.optim.aux_lr)


def prepare():
  from icmh_jax import xla_options
  xla_options.for_training()  # the step runs as train.py runs it


def run(args) -> dict:
  config = _config(args)
  torch_knobs = _torch_reference_knobs(args, config)
  import jax
  import numpy as np
  from icmh_jax.benchmarks import harness
  from icmh_jax.models import registry
  from icmh_jax.train import loop, optim, step as step_lib

  system = registry.get_system(config.system, config.model)
  mesh = step_lib.make_mesh()
  params = loop.fresh_params(system, config)
  state = jax.jit(lambda p: optim.create_train_state(p, system.trainable_key()))(
      step_lib.replicate(params, mesh))
  rng = np.random.default_rng(0)
  local = {"image": rng.integers(0, 256, (args.batch, args.crop, args.crop, 3), dtype=np.uint8),
           "edges": rng.integers(0, 2, (args.batch, args.crop, args.crop), dtype=np.uint8)}
  batch = loop.global_batch(local, step_lib.batch_sharding(mesh))
  key = jax.random.wrap_key_data(step_lib.replicate(np.zeros(2, np.uint32), mesh))
  train_step = step_lib.make_train_step(mesh, system=system, config=config)
  holder = {"state": state}

  def one():
    holder["state"], metrics = train_step(holder["state"], batch, key)
    harness.block(metrics)

  with harness.compile_phases() as phases:
    t = harness.measure("train_step", one, repeats=args.repeats, warmup=1)
  results = dict(system=config.system, model=dict(config.model), batch=args.batch,
                 crop=args.crop, compute_dtype=config.get("compute_dtype", "float32"),
                 remat=step_lib.remat_scope(config) or False,
                 devices=jax.device_count(), compile_and_first_step_s=t.first_call_s,
                 **{f"first_step_{k}": v for k, v in phases.items()},
                 step_s=t.median_s, runs_s=t.runs_s, images_per_s=args.batch / t.median_s,
                 **harness.peak_memory())
  if torch_knobs:
    from icmh_jax.benchmarks import torch_reference
    from icmh_jax.convert import tcm as convert_tcm
    ref = torch_reference.isolated(
        "time_train_step", directory=args.torch_reference, batch=args.batch, crop=args.crop,
        state_dict=convert_tcm.to_reference(jax.device_get(params["base"])),
        repeats=args.repeats, threads=args.torch_threads, **torch_knobs)
    results.update({f"torch_{k}": v for k, v in ref.items()})
    results["speedup"] = torch_reference.speedup(ref["step_s"], t.median_s)
  return results
