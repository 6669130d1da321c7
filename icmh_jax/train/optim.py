"""Optimisers, learning-rate schedule and the train state (LIC-TCM's two-optimiser recipe).

The factorized priors' `quantiles` get the auxiliary optimiser (trained on the aux loss); every
other trainable parameter gets the main optimiser. Split by parameter name, like LIC_TCM train.py.
Only `params[system.trainable_key()]` is optimised; the rest of `params` (the frozen base of the
human-layer systems) rides along in the state untouched.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

AUX_PARAM = "quantiles"  # the factorized prior's quantile parameters (aux loss only)


@flax.struct.dataclass
class TrainState:
  """Everything a step changes. `params` = {"base": ..., "additional": ...} (all systems)."""
  step: jax.Array  # int32 scalar, number of updates done
  params: Any
  opt_state: Any  # main optimiser, over params[trainable_key]
  aux_opt_state: Any  # auxiliary optimiser, over the same subtree (quantiles only)


def param_labels(tree):
  """"aux" for each `quantiles` leaf, "main" for every other leaf of `tree`."""
  def label(path, _):
    name = getattr(path[-1], "key", getattr(path[-1], "name", ""))
    return "aux" if name == AUX_PARAM else "main"
  return jax.tree_util.tree_map_with_path(label, tree)


def lr_schedule(config) -> optax.Schedule:
  """Multi-step decay: optim.lr, times schedule.gamma at each of schedule.milestones (steps)."""
  return optax.piecewise_constant_schedule(
      config.optim.lr, {int(m): float(config.schedule.gamma) for m in config.schedule.milestones})


def make_optimizers(config):
  """(main, aux) optax transforms; clipping happens in the step (it is shared by both, see there)."""
  main = optax.multi_transform({"main": optax.adam(lr_schedule(config)), "aux": optax.set_to_zero()},
                               param_labels)
  aux = optax.multi_transform({"main": optax.set_to_zero(), "aux": optax.adam(config.optim.aux_lr)},
                              param_labels)
  return main, aux


def create_train_state(params, trainable_key: str, config) -> TrainState:
  """A fresh state at step 0 around `params` (optimiser states over `params[trainable_key]`)."""
  main, aux = make_optimizers(config)
  trainable = params[trainable_key]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=main.init(trainable),
                    aux_opt_state=aux.init(trainable))
