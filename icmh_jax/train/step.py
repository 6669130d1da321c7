"""The sharded train and eval steps: pure per-device functions wrapped in `jax.jit(shard_map(...))`.

`train_step` sees its device's slice of the global batch. Each example's training noise comes from
`fold_in(fold_in(rng, step), global_example_index)`, and gradients and metrics are `pmean`ed over
the "data" axis, so 1 and 4 devices give the same update for the same global batch.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

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


def _forward(system, params, x, keys, dtype):
  """Per-example forward (vmapped over examples so each one's noise comes from its own key)."""
  def one(xi, key):
    return system.apply(_cast(params, dtype), xi[None].astype(dtype), train=True, rng=key)
  out = jax.vmap(one)(x, keys)
  return out.replace(x_hat=out.x_hat[:, 0], x_hat_m=out.x_hat_m[:, 0])


REMAT_FROM_WIDTH = 128


def remat_enabled(config) -> bool:
  """`config.remat`, or where it is unset, whether it pays: for a trained codec of width
  N >= 128. Measured at batch 8 x 256² on a 2-core, 24 GB CPU machine: N = 128 peaks at 21 GB
  of RSS without it (the PyTorch reference: 15 GB), 14 GB with it, its step 72 s -> 94 s;
  N = 64 peaks at 12.6 GB without it and would pay 19 % more time for 8.7 GB (BENCHMARKS.md).
  `--config.remat=False` trades the memory back for speed where it fits."""
  if config.get("remat") is not None:
    return bool(config.remat)
  model = config.get("model") or {}
  return model.get("N", model.get("N_machine", 0)) >= REMAT_FROM_WIDTH


def train_step(state: optim.TrainState, batch, rng, lam=None, *, system, config):
  """One update on this device's share of the batch (call inside shard_map over "data").

  Args:
    state: replicated TrainState.
    batch: {"image": [b, H, W, 3] uint8 or float in [0, 1], "edges": [b, H, W] (mask "edges")}.
    rng: replicated PRNG key of the run (the step is folded in here).
    lam: the rate-distortion λ as a (traced) scalar; default `config.loss.lam`.
    system: a `System` (registry).
    config: the run config (loss, optim, compute_dtype).

  Returns:
    (new state, metrics) with metrics averaged over the global batch: loss, bpp/<layer>, mse, psnr,
    aux, lr, grad_norm.
  """
  x = _images(batch)
  m = losses.distortion_mask(batch, config.loss.mask, x)
  key = system.trainable_key()
  step_rng = jax.random.fold_in(rng, state.step)
  keys = jax.vmap(lambda i: jax.random.fold_in(step_rng, i))(_global_index(x.shape[0]))
  dtype = jnp.dtype(config.get("compute_dtype", "float32"))

  def loss_fn(trainable):
    params = {**state.params, key: trainable}
    out = _forward(system, params, x, keys, dtype)
    return losses.rate_distortion(out, x, m, trained_layer=system.trained_layer,
                                  lam=config.loss.lam if lam is None else lam)

  def aux_fn(trainable):
    return system.aux_loss({**state.params, key: trainable})

  trainable = state.params[key]
  with remat.checkpoint_blocks(remat_enabled(config)):
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
  aux, aux_grads = jax.value_and_grad(aux_fn)(trainable)
  grads, aux_grads = jax.lax.pmean((grads, aux_grads), AXIS)
  grad_norm = optax.tree.norm(grads)
  # Like LIC_TCM: clip all gradients of the main loss; the quantiles then step on the clipped
  # main-loss gradient plus the aux gradient (PyTorch accumulates both before aux_optimizer.step).
  grads = jax.tree.map(lambda g: g * jnp.minimum(1.0, config.optim.clip_norm / (grad_norm + 1e-12)),
                       grads)
  main_tx, aux_tx = optim.make_optimizers(config)
  updates, opt_state = main_tx.update(grads, state.opt_state, trainable)
  trainable = optax.apply_updates(trainable, updates)
  aux_updates, aux_opt_state = aux_tx.update(jax.tree.map(jnp.add, grads, aux_grads),
                                             state.aux_opt_state, trainable)
  trainable = optax.apply_updates(trainable, aux_updates)
  metrics = jax.lax.pmean({**metrics, "aux": aux}, AXIS)
  metrics.update(lr=optim.lr_schedule(config)(state.step), grad_norm=grad_norm)
  new = state.replace(step=state.step + 1, params={**state.params, key: trainable},
                      opt_state=opt_state, aux_opt_state=aux_opt_state)
  return new, metrics


def eval_step(params, batch, lam=None, *, system, config):
  """Eval-mode (rounded latents) estimate of the loss metrics on this device's share of a batch."""
  x = _images(batch)
  m = losses.distortion_mask(batch, config.loss.mask, x)
  out = system.apply(params, x, train=False)
  _, metrics = losses.rate_distortion(out, x, m, trained_layer=system.trained_layer,
                                      lam=config.loss.lam if lam is None else lam)
  return jax.lax.pmean(metrics, AXIS)


def make_train_step(mesh: Mesh, *, system, config):
  """`step(state, batch, rng) -> (state, metrics)`: jit of shard_map, batch on P("data"), state
  replicated and donated."""
  fn = functools.partial(train_step, system=system, config=config)
  sharded = jax.shard_map(fn, mesh=mesh, in_specs=(P(), P(AXIS), P(), P()), out_specs=(P(), P()))
  return _with_lam(jax.jit(sharded, donate_argnums=0), mesh, config)


def make_eval_step(mesh: Mesh, *, system, config):
  """`eval(params, batch) -> metrics`, batch on P("data"), params replicated."""
  fn = functools.partial(eval_step, system=system, config=config)
  return _with_lam(jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(P(), P(AXIS), P()),
                                         out_specs=P())), mesh, config)


def _with_lam(jitted, mesh: Mesh, config):
  # λ enters as an argument, not a constant, so runs that differ only in λ (the paper's grid)
  # compile to the same program and share it through JAX's persistent compilation cache.
  lam = replicate(np.float32(config.loss.lam), mesh)
  return lambda *args: jitted(*args, lam)


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
