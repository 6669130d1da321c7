"""Orbax checkpoints: standalone params directories and the training `CheckpointManager`.

A *params directory* holds two Orbax items: `params` (the parameter pytree) and `meta` (JSON with
at least `system` and `model`, the model config). Every step directory the training manager writes
(`<workdir>/checkpoints/<step>/`) has the same two items beside the optimiser states, RNG and data
iterator, so `load_params` reads a released params directory, one step, or a whole workdir (then
its latest step) alike.
"""

import json
import os
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

from icmh_jax.errors import CheckpointError

CHECKPOINTS = "checkpoints"  # sub-directory of a training workdir holding the step directories


def plain_json(meta: Mapping[str, Any]) -> dict:
  """`meta` as plain JSON types (ConfigDicts and numpy scalars included)."""
  try:
    return json.loads(json.dumps(meta, default=_json_default))
  except (TypeError, ValueError) as e:
    raise ValueError(f"checkpoint meta must be JSON-serialisable: {e}") from e


def _json_default(o):
  if hasattr(o, "to_dict"):
    return o.to_dict()
  if isinstance(o, np.generic):
    return o.item()
  if isinstance(o, (tuple, set)):
    return list(o)
  raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def save_params(path, params, meta: Mapping[str, Any]) -> str:
  """Writes `params` and `meta` as a params directory at `path` (replacing one already there).

  Args:
    path: directory to create.
    params: pytree of arrays (numpy or jax).
    meta: JSON-serialisable mapping; by convention `{"system": name, "model": config.model, ...}`.
      ConfigDicts are converted.

  Returns:
    The absolute path written. In a multi-process run every process must call this.
  """
  path = os.path.abspath(os.fspath(path))
  ckptr = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
  ckptr.save(path, args=ocp.args.Composite(params=ocp.args.StandardSave(params),
                                           meta=ocp.args.JsonSave(plain_json(meta))), force=True)
  ckptr.close()
  return path


def step_dirs(root: str) -> list[int]:
  """Steps with a finished step directory under `root` (Orbax temp dirs are not digits)."""
  if not os.path.isdir(root):
    return []
  return sorted(int(n) for n in os.listdir(root)
                if n.isdigit() and os.path.isdir(os.path.join(root, n, "params")))


def resolve_params_dir(path) -> str:
  """The params directory `path` names: itself, or the latest step of a workdir / step root.

  Raises:
    CheckpointError: nothing loadable there.
  """
  path = os.path.abspath(os.fspath(path))
  if not os.path.exists(path):
    raise CheckpointError(f"checkpoint {path} does not exist")
  if os.path.isdir(os.path.join(path, "params")):
    return path
  for root in (os.path.join(path, CHECKPOINTS), path):
    steps = step_dirs(root)
    if steps:
      return os.path.join(root, str(steps[-1]))
  raise CheckpointError(f"checkpoint {path} is neither a params directory (with params/ and meta/) "
                        f"nor a training workdir with finished steps under {CHECKPOINTS}/")


def _key(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def _shapes(tree) -> dict[str, tuple]:
  return {_key(p): tuple(np.shape(x) if not hasattr(x, "shape") else x.shape)
          for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def check_tree(params, like, path="params") -> None:
  """Raises `CheckpointError` unless `params` has exactly the keys and shapes of `like`.

  Args:
    params: loaded pytree.
    like: expected pytree of arrays or `jax.ShapeDtypeStruct`s (e.g. `jax.eval_shape(init)`).
    path: named in the message.
  """
  got, want = _shapes(params), _shapes(like)
  missing = sorted(set(want) - set(got))
  unexpected = sorted(set(got) - set(want))
  shapes = [f"{k}: checkpoint {got[k]} vs expected {want[k]}"
            for k in sorted(set(got) & set(want)) if got[k] != want[k]]
  if missing or unexpected or shapes:
    lines = [f"checkpoint {path} does not match the expected parameters:"]
    lines += [f"  missing keys ({len(missing)}): {_some(missing, ', ')}"] if missing else []
    lines += [f"  unexpected keys ({len(unexpected)}): {_some(unexpected, ', ')}"] if unexpected else []
    lines += [f"  shape mismatches ({len(shapes)}): {_some(shapes, '; ')}"] if shapes else []
    raise CheckpointError("\n".join(lines))


def _some(items, sep, n=12):
  """The first `n` items joined (a whole-model mismatch would otherwise print thousands)."""
  more = f"{sep}... and {len(items) - n} more" if len(items) > n else ""
  return sep.join(items[:n]) + more


def _flat(d, prefix=""):
  out = {}
  for k, v in d.items():
    if isinstance(v, Mapping):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def check_meta(meta: Mapping[str, Any], expect: Mapping[str, Any], path="params") -> None:
  """Raises `CheckpointError` when a value of `expect` (nested keys allowed) differs in `meta`."""
  got, want = _flat(meta), _flat(plain_json(expect))
  bad = [f"{k}={got.get(k, '<absent>')!r} but expected {v!r}"
         for k, v in want.items() if got.get(k, "<absent>") != v]
  if bad:
    raise CheckpointError(f"checkpoint {path} has " + ", ".join(bad))


def read_meta(path) -> dict:
  """The JSON meta of the params directory (or workdir's latest step) at `path`."""
  pdir = resolve_params_dir(path)
  try:
    with open(os.path.join(pdir, "meta", "metadata")) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise CheckpointError(f"checkpoint {pdir} has no readable meta: {e}") from e


def load_params(path, expect_meta: Mapping[str, Any] | None = None, *, like=None):
  """Loads a params directory, a step directory or a workdir's latest step.

  Args:
    path: params directory, step directory, or training workdir.
    expect_meta: values the meta must have, e.g. `{"system": "sa_icm", "model": {"N": 128}}`.
    like: optional expected pytree (arrays or ShapeDtypeStructs); keys and shapes must match.

  Returns:
    `(params, meta)`: params as a pytree of numpy arrays (device-agnostic; `jax.device_put` them
    where needed), meta as a dict.

  Raises:
    CheckpointError: missing or unreadable checkpoint, meta or parameter mismatch.
  """
  pdir = resolve_params_dir(path)
  meta = read_meta(pdir)
  if expect_meta:
    check_meta(meta, expect_meta, pdir)
  item = os.path.join(pdir, "params")
  try:
    with ocp.PyTreeCheckpointer() as ckptr:
      tree = ckptr.metadata(item).item_metadata.tree
      if like is not None:
        check_tree(tree, like, pdir)
      restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
      params = ckptr.restore(item, args=ocp.args.PyTreeRestore(restore_args=restore_args))
  except CheckpointError:
    raise
  except Exception as e:  # Orbax/tensorstore raise many types for a damaged directory.
    raise CheckpointError(f"checkpoint {pdir} is unreadable: {type(e).__name__}: {e}") from e
  return params, meta


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
