"""The sharded train and eval steps: pure per-device functions wrapped in `jax.jit(shard_map(...))`.

`train_step` sees its device's slice of the global batch. Each example's training noise comes from
`fold_in(fold_in(rng, step), global_example_index)`, and gradients and metrics are `pmean`ed over
the "data" axis, so 1 and 4 devices give the same update for the same global batch.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from icmh_jax import malloc_options
from icmh_jax.errors import ConfigError
from icmh_jax.layers import remat
from icmh_jax.train import losses, optim

AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (global) devices with the batch axis "data" (classic auto sharding)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (AXIS,))


def _images(batch):
  """x [b, H, W, 3] float32 in [0, 1] from the batch's uint8 (or float) images."""
  x = batch["image"]
  return x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)


def _global_index(b):
  """Global example indices [b] of this device's examples (the batch is laid out device-major)."""
  return jax.lax.axis_index(AXIS) * b + jnp.arange(b)


def _cast(tree, dtype):
  return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _pmean_flat(tree):
  """(pmean over "data" of the raveled tree [P], unravel) with ONE all-reduce. Per-leaf
  all-reduces (one per use of a weight, as autodiff transposes each broadcast of a replicated
  weight) were 2528 in the N = 64 step, and XLA CPU's all-reduce combiner spent minutes of its
  compile on them."""
  flat, unravel = ravel_pytree(tree)
  return jax.lax.pmean(flat, AXIS), unravel


def training_noise(shapes: dict, rng, step, index) -> dict:
  """The U(-½, ½) noise {"y", "z"} [len(index), ...] the train step adds to the trained codec's
  latents at `step` (0-based) for the examples `index` of the global batch.

  Example i's noise is drawn from fold_in(fold_in(rng, step), i) alone, so it does not depend on
  how the batch is split over devices, and a harness can redraw it outside the step (the side by
  side feeds it to the PyTorch reference). Only the draws are vmapped: the network runs once on
  the whole batch. Float32 whatever the compute dtype: the noise enters only the rates, and
  y + noise rounded to bfloat16 (8 significant bits) would coarsen the noise itself wherever
  |y| >= 2, so a bfloat16 run computes its rates from the float32 noisy latents (JAX promotes)
  with exactly its float32 twin's noise.

  Args:
    shapes: one example's {"y": (h, w, M), "z": (h', w', C)} (`System.noise_shapes`).
    rng: the run's PRNG key; step: the step counter; index: int [b] global example indices.
  """
  step_rng = jax.random.fold_in(rng, step)

  def one(i):
    ky, kz = jax.random.split(jax.random.fold_in(step_rng, i))
    return {"y": jax.random.uniform(ky, shapes["y"], jnp.float32, -0.5, 0.5),
            "z": jax.random.uniform(kz, shapes["z"], jnp.float32, -0.5, 0.5)}
  return jax.vmap(one)(index)


REMAT_FROM_WIDTH = 128


def remat_enabled(config) -> bool:
  """`config.remat`, or where it is unset, whether it pays: for a trained codec of width
  N >= 128. Measured at batch 8 x 256² on a 2-core, 24 GB CPU machine (2026-12-07): N = 128
  needs 16.5 GiB of XLA temporaries without it, 11.0 GiB with the transformer scope, peaking at
  14.8 GiB of RSS (the PyTorch reference: 15.0 GiB) for about 2 % more time per step; N = 64
  fits without it (8.6 GiB of temporaries, 11.5 GiB peak RSS; BENCHMARKS.md).
  `--config.remat=False` trades the memory back for speed where it fits."""
  if config.get("remat") is not None:
    return bool(config.remat)
  model = config.get("model") or {}
  return model.get("N", model.get("N_machine", 0)) >= REMAT_FROM_WIDTH


def remat_scope(config) -> str | None:
  """What the backward recomputes: None (`remat_enabled` false), else `config.remat_scope`
  ("block" or "transformer", `layers/remat.py`)."""
  if not remat_enabled(config):
    return None
  scope = config.get("remat_scope") or "transformer"
  if scope not in remat.SCOPES:
    raise ConfigError(f"remat_scope={scope!r} is not allowed; choose one of "
                      f"{', '.join(remat.SCOPES)}")
  return scope


def train_step(state: optim.TrainState, batch, rng, hyper, *, system, mask: str,
               clip_norm: float, compute_dtype: str, remat_scope: str | None):
  """One update on this device's share of the batch (call inside shard_map over "data").

  Args:
    state: replicated TrainState.
    batch: {"image": [b, H, W, 3] uint8 or float in [0, 1], "edges": [b, H, W] (mask "edges")}.
    rng: replicated PRNG key of the run (the step is folded in here).
    hyper: `optim.hyper(config)` (traced: λ, learning rate and its schedule).
    system: a `System` (registry).
    mask, clip_norm, compute_dtype, remat_scope: the run's `loss.mask`, `optim.clip_norm`,
      `compute_dtype`, `remat_scope(config)` (see `step_knobs`).

  Returns:
    (new state, metrics) with metrics averaged over the global batch: loss, bpp/<layer>, mse, psnr,
    aux, lr, grad_norm.
  """
  x = _images(batch)
  m = losses.distortion_mask(batch, mask, x)
  key = system.trainable_key()
  dtype = jnp.dtype(compute_dtype)
  noise = training_noise(system.noise_shapes(x.shape[1:]), rng, state.step,
                         _global_index(x.shape[0]))

  def loss_fn(trainable):
    params = _cast({**state.params, key: trainable}, dtype)
    out = system.apply(params, x.astype(dtype), train=True, noise=noise)
    return losses.rate_distortion(out, x, m, trained_layer=system.trained_layer,
                                  lam=hyper["lam"])

  def aux_fn(trainable):
    return system.aux_loss({**state.params, key: trainable})

  trainable = state.params[key]
  # The gradient is taken with respect to a per-device ("varying") copy, so it stays this
  # device's and is averaged below in one all-reduce, not summed at every use of a weight.
  with remat.checkpoint_blocks(remat_scope):
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        jax.lax.pcast(trainable, (AXIS,), to="varying"))
  # The aux loss reads only the replicated quantiles: the same on every device, no reduction.
  aux, aux_grads = jax.value_and_grad(aux_fn)(trainable)
  grads, _ = _pmean_flat(grads)
  trainable, opt_state, aux_opt_state, grad_norm, lr = optim.update(
      trainable, state.opt_state, state.aux_opt_state, grads, aux_grads, hyper, state.step,
      clip_norm)
  means, unravel = _pmean_flat(metrics)
  metrics = {**unravel(means), "aux": aux, "lr": lr, "grad_norm": grad_norm}
  new = state.replace(step=state.step + 1, params={**state.params, key: trainable},
                      opt_state=opt_state, aux_opt_state=aux_opt_state)
  return new, metrics


def eval_step(params, batch, hyper, *, system, mask: str):
  """Eval-mode (rounded latents) estimate of the loss metrics on this device's share of a batch."""
  x = _images(batch)
  m = losses.distortion_mask(batch, mask, x)
  out = system.apply(params, x, train=False)
  _, metrics = losses.rate_distortion(out, x, m, trained_layer=system.trained_layer,
                                      lam=hyper["lam"])
  return jax.lax.pmean(metrics, AXIS)


def step_knobs(config) -> dict:
  """What of a run config shapes the traced step (everything else of it is `optim.hyper`)."""
  return dict(mask=config.loss.mask, clip_norm=float(config.optim.clip_norm),
              compute_dtype=str(config.get("compute_dtype", "float32")),
              remat_scope=remat_scope(config))


# One traced and compiled step per (mesh, system, knobs) in a process: the runs of a study (other
# λ, learning rates, schedules) reuse it instead of tracing again.
@functools.lru_cache(maxsize=16)
def _jitted_train_step(mesh: Mesh, system, knobs: tuple):
  fn = functools.partial(train_step, system=system, **dict(knobs))
  sharded = jax.shard_map(fn, mesh=mesh, in_specs=(P(), P(AXIS), P(), P()), out_specs=(P(), P()))
  return jax.jit(sharded, donate_argnums=0)


@functools.lru_cache(maxsize=16)
def _jitted_eval_step(mesh: Mesh, system, mask: str):
  fn = functools.partial(eval_step, system=system, mask=mask)
  return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(P(), P(AXIS), P()), out_specs=P()))


def release_compiled() -> None:
  """Drops this process's compiled steps (and JAX's in-memory caches); the next step compiles
  again, or reads the persistent compilation cache. XLA CPU maps every kernel's code on its own,
  so a process that keeps many systems' steps alive runs into Linux's limit of 65 530 mappings
  per process (LLVM then fails with "Cannot allocate memory"); see `runs.train`."""
  _jitted_train_step.cache_clear()
  _jitted_eval_step.cache_clear()
  jax.clear_caches()


def make_train_step(mesh: Mesh, *, system, config):
  """`step(state, batch, rng) -> (state, metrics)`: jit of shard_map, batch on P("data"), state
  replicated and donated; the run's `optim.hyper(config)` goes in as an argument.

  A new input signature is compiled apart first (jit then runs that executable), and the heap
  the compiler freed goes back to the system before the step first runs
  (`malloc_options.release`): our malloc settings keep freed memory, so the compiler's leftovers
  would otherwise sit beside the step's temporaries (`icmh bench train --model tcm --N 64` with
  the cache off: peak RSS 12.4 GB instead of 14.5 GB; BENCHMARKS.md)."""
  jitted = _jitted_train_step(mesh, system, tuple(sorted(step_knobs(config).items())))
  h = replicate(optim.hyper(config), mesh)
  compiled = set()

  def step(state, batch, rng):
    leaves, tree = jax.tree.flatten((state, batch, rng))
    signature = (tree, *((np.shape(x), getattr(x, "dtype", type(x))) for x in leaves))
    if signature not in compiled:
      jitted.lower(state, batch, rng, h).compile()
      malloc_options.release()
      compiled.add(signature)
    return jitted(state, batch, rng, h)
  return step


def make_eval_step(mesh: Mesh, *, system, config):
  """`eval(params, batch) -> metrics`, batch on P("data"), params replicated."""
  jitted = _jitted_eval_step(mesh, system, config.loss.mask)
  h = replicate(optim.hyper(config), mesh)
  return lambda params, batch: jitted(params, batch, h)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
  """Host values (the same on every process) -> global arrays replicated over `mesh`; an explicit
  copy that also works when the mesh spans processes (where `device_put` cannot)."""
  sharding = replicated(mesh)

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree.map(put, tree)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))
