"""Orbax training state: the `CheckpointManager` of a run, and saving / restoring its state.

Each step directory holds the params directory items of `icmh_jax.params_io` (`params`, `meta`)
beside the optimiser states, the RNG and the data iterator state, so a finished step is also a
params directory that `params_io.load_params` reads.
"""

import os
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

from icmh_jax.errors import CheckpointError
from icmh_jax.params_io import CHECKPOINTS, check_tree, plain_json

def make_manager(workdir, *, keep: int, async_save: bool = True) -> ocp.CheckpointManager:
  """The training run's manager at `<workdir>/checkpoints`: keeps the newest `keep` steps and the
  step with the lowest validation loss (`metrics={"val_loss": ...}` given to `save_state`)."""
  policy = ocp.checkpoint_managers.AnyPreservationPolicy([
      ocp.checkpoint_managers.LatestN(n=keep),
      ocp.checkpoint_managers.BestN(get_metric_fn=lambda m: -m["val_loss"], n=1,
                                    keep_checkpoints_without_metrics=False)])
  options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=True,
                                         enable_async_checkpointing=async_save)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(os.fspath(workdir)), CHECKPOINTS),
                               options=options)


def save_state(mngr: ocp.CheckpointManager, state, rng, data_state: dict, meta: Mapping[str, Any],
               metrics: Mapping[str, float] | None = None) -> None:
  """Saves a TrainState (params, both optimiser states, step), the run's RNG key (JSON, it is
  replicated) and the data iterator state as step `state.step`; every process must call it."""
  step = int(jax.device_get(state.step))
  mngr.save(step, metrics=dict(metrics) if metrics else None, args=ocp.args.Composite(
      params=ocp.args.StandardSave(state.params),
      meta=ocp.args.JsonSave(plain_json(meta)),
      opt_state=ocp.args.StandardSave(state.opt_state),
      aux_opt_state=ocp.args.StandardSave(state.aux_opt_state),
      progress=ocp.args.JsonSave({"step": step, "data": data_state,
                                  "rng": np.asarray(jax.device_get(jax.random.key_data(rng))).tolist()})))


def restore_state(mngr: ocp.CheckpointManager, step: int, abstract_state):
  """Restores what `save_state` wrote at `step` into the structure (and shardings) of
  `abstract_state` (a TrainState of ShapeDtypeStructs).

  Returns:
    (state with `step` a host int32, RNG key data uint32 (host), data iterator state).

  Raises:
    CheckpointError: the step is unreadable or its parameters do not match the abstract state.
  """
  pdir = os.path.join(os.fspath(mngr.directory), str(step))
  tree = ocp.PyTreeCheckpointer().metadata(os.path.join(pdir, "params")).item_metadata.tree
  check_tree(tree, abstract_state.params, pdir)
  try:
    got = mngr.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_state.params),
        opt_state=ocp.args.StandardRestore(abstract_state.opt_state),
        aux_opt_state=ocp.args.StandardRestore(abstract_state.aux_opt_state),
        progress=ocp.args.JsonRestore()))
  except Exception as e:  # Orbax/tensorstore raise many types for a damaged directory.
    raise CheckpointError(f"checkpoint {pdir} is unreadable: {type(e).__name__}: {e}") from e
  state = abstract_state.replace(step=np.asarray(got.progress["step"], np.int32),
                                 params=got.params, opt_state=got.opt_state,
                                 aux_opt_state=got.aux_opt_state)
  return state, np.asarray(got.progress["rng"], np.uint32), got.progress["data"]
