"""Optimisers, learning-rate schedule and the train state (LIC-TCM's two-optimiser recipe).

The factorized priors' `quantiles` get the auxiliary optimiser (trained on the aux loss); every
other trainable parameter gets the main optimiser. Split by parameter name, like LIC_TCM train.py.
Only `params[system.trainable_key()]` is optimised; the rest of `params` (the frozen base of the
human-layer systems) rides along in the state untouched.

Both optimisers work on the trainable tree raveled into one vector (`ravel_pytree`: leaves in
sorted-key order). Adam is elementwise, so the update is the one per leaf, but the step compiles a
handful of kernels for it instead of several per leaf: the N = 64 step has ~500 leaves, and their
clip / norm / Adam kernels were ~6000 of the 14800 XLA CPU compiled.

What differs between runs of one model (λ, learning rate, its milestones and decay, aux learning
rate) is `hyper(config)`, an argument of the step, not a constant in it: runs of a study share
one traced and compiled step.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from icmh_jax.errors import ConfigError

AUX_PARAM = "quantiles"  # the factorized prior's quantile parameters (aux loss only)
MAX_MILESTONES = 8  # the schedule's milestones are padded to this many (a fixed argument shape)
_NEVER = np.iinfo(np.int32).max


@flax.struct.dataclass
class TrainState:
  """Everything a step changes. `params` = {"base": ..., "additional": ...} (all systems)."""
  step: jax.Array  # int32 scalar, number of updates done
  params: Any
  opt_state: Any  # Adam moments over ravel(params[trainable_key]) [P] (quantiles unused)
  aux_opt_state: Any  # Adam moments over the quantiles, aux_vector(...) [Q]


def _is_aux(path) -> bool:
  return getattr(path[-1], "key", getattr(path[-1], "name", "")) == AUX_PARAM


def aux_indices(tree) -> np.ndarray:
  """Positions [Q] of the quantiles' elements in `ravel_pytree(tree)`, in `aux_vector` order."""
  spans, start = [], 0
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    size = int(np.prod(np.shape(leaf)))
    if _is_aux(path):
      spans.append(np.arange(start, start + size))
    start += size
  return np.concatenate(spans) if spans else np.zeros((0,), np.int64)


def aux_vector(tree):
  """The quantile leaves of `tree` raveled and concatenated: [Q]."""
  leaves = [jnp.ravel(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
            if _is_aux(path)]
  return jnp.concatenate(leaves) if leaves else jnp.zeros((0,), jnp.float32)


def hyper(config) -> dict:
  """The step's per-run arguments: lam, lr, gamma, milestones [MAX_MILESTONES] (padded with
  int32 max), aux_lr, as numpy scalars / arrays."""
  milestones = sorted(int(m) for m in config.schedule.milestones)
  if len(milestones) > MAX_MILESTONES:
    raise ConfigError(f"schedule.milestones: at most {MAX_MILESTONES}, got {len(milestones)}")
  if any(m < 0 or m >= _NEVER for m in milestones):
    raise ConfigError(f"schedule.milestones must be steps in [0, {_NEVER}), got {milestones}")
  padded = np.full((MAX_MILESTONES,), _NEVER, np.int32)
  padded[:len(milestones)] = milestones
  return dict(lam=np.float32(config.loss.lam), lr=np.float32(config.optim.lr),
              gamma=np.float32(config.schedule.gamma), milestones=padded,
              aux_lr=np.float32(config.optim.aux_lr))


def learning_rate(h, step):
  """Multi-step decay: h["lr"], times h["gamma"] from each milestone on (step >= milestone), as
  `optax.piecewise_constant_schedule` (same products in the same order)."""
  lr = jnp.asarray(h["lr"], jnp.float32)
  for i in range(MAX_MILESTONES):
    lr = lr * jnp.where(step >= h["milestones"][i], h["gamma"], jnp.float32(1))
  return lr


def adam() -> optax.GradientTransformation:
  """Adam's direction (optax.adam's defaults); the step scales it by -lr."""
  return optax.scale_by_adam()


def create_train_state(params, trainable_key: str) -> TrainState:
  """A fresh state at step 0 around `params` (optimiser states over `params[trainable_key]`; they
  do not depend on the run's hyper-parameters)."""
  trainable = params[trainable_key]
  flat, _ = ravel_pytree(trainable)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=adam().init(flat),
                    aux_opt_state=adam().init(aux_vector(trainable)))


def update(trainable, opt_state, aux_opt_state, grads, aux_grads, h, step, clip_norm):
  """One optimiser step of LIC_TCM: clip the main-loss gradient at `clip_norm` (global norm),
  Adam(lr) on every non-quantile parameter; Adam(aux_lr) on the quantiles with the clipped main
  gradient plus the aux gradient (PyTorch accumulates both before aux_optimizer.step).

  Args:
    trainable: the trainable params tree.
    grads: main-loss gradient raveled [P] (already averaged over devices).
    aux_grads: aux-loss gradient tree (only its quantiles are read).
    h: `hyper(config)` values (traced).
    step: updates done so far (int32 scalar).
  Returns:
    (trainable, opt_state, aux_opt_state, grad_norm, lr).
  """
  flat, unravel = ravel_pytree(trainable)
  aux_idx = aux_indices(trainable)
  grad_norm = jnp.sqrt(jnp.sum(grads * grads))
  grads = grads * jnp.minimum(1.0, clip_norm / (grad_norm + 1e-12))
  lr = learning_rate(h, step)
  direction, opt_state = adam().update(grads, opt_state)
  direction = direction.at[aux_idx].set(0)  # the quantiles follow the aux optimiser only
  flat = flat + (-lr) * direction
  aux_direction, aux_opt_state = adam().update(grads[aux_idx] + aux_vector(aux_grads),
                                               aux_opt_state)
  flat = flat.at[aux_idx].add((-h["aux_lr"]) * aux_direction)
  return unravel(flat), opt_state, aux_opt_state, grad_norm, lr
