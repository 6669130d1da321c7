"""The params-directory format: standalone parameter checkpoints any layer may read or write.

A *params directory* holds two Orbax items: `params` (the parameter pytree) and `meta` (JSON with
at least `system` and `model`, the model config). Every step directory the training manager writes
(`<workdir>/checkpoints/<step>/`, `icmh_jax.train.checkpoint`) has the same two items beside the
optimiser states, RNG and data iterator, so `load_params` reads a released params directory, one
step, or a whole workdir (then its latest step) alike. This module is a leaf: the registry, the
converters, evaluation and the trainer all import it, and it imports none of them.
"""

import json
import os
from typing import Any, Mapping

import jax
import numpy as np

from icmh_jax import trace_cache
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
  import orbax.checkpoint as ocp  # here, not at import: a new `icmh encode` often needs none
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


def _as_numpy(tree):
  import orbax.checkpoint as ocp
  return jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)


KEEP_COPIES = 4  # weights of the most recently loaded checkpoints kept beside the cache


def _restore(item, like):
  """The params restored into `like`'s tree without reading Orbax's tree metadata first (half
  the load of a small model); None when that fails, so the caller reads the metadata and says
  which keys or shapes differ.

  While the compilation cache is on, a copy of them is kept there (`trace_cache`, keyed by every
  file of `item` with its size and modification time, and by `like`): Orbax's restore costs about
  0.4 ms per array, 0.7 s of a tiny FR-ICMH's 1930 in a new `icmh encode`; the copy reads in
  milliseconds.
  """
  leaves, treedef = jax.tree.flatten(like)
  path = None
  if trace_cache.cache_dir():
    path = trace_cache.entry_path("params", repr((os.path.realpath(item), str(treedef),
                                                  [(x.shape, np.dtype(x.dtype).str) for x in leaves],
                                                  trace_cache.files_signature(item))), ".bin")
    copy = trace_cache.read_arrays(path)
    if copy is not None and [(a.shape, a.dtype) for a in copy] == [
        (tuple(x.shape), np.dtype(x.dtype)) for x in leaves]:
      try:
        os.utime(path)  # most recently used (`keep_newest`); a read-only cache still reads
      except OSError:
        pass
      return jax.tree.unflatten(treedef, copy)
  import orbax.checkpoint as ocp  # not at import: about 0.2 s, and a copy needs none
  try:
    with ocp.PyTreeCheckpointer() as ckptr:
      params = ckptr.restore(item,
                             args=ocp.args.PyTreeRestore(item=like, restore_args=_as_numpy(like)))
  except Exception:  # noqa: BLE001 -- explained by the metadata path
    return None
  if path is not None and jax.tree.structure(params) == treedef:
    trace_cache.write_arrays(path, jax.tree.leaves(params))
    trace_cache.keep_newest("params", KEEP_COPIES)
  return params


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
    CheckpointError: missing or unreadable checkpoint, meta or parameter mismatch, parameters
      holding NaN or Inf.
  """
  pdir = resolve_params_dir(path)
  meta = read_meta(pdir)
  if expect_meta:
    check_meta(meta, expect_meta, pdir)
  item = os.path.join(pdir, "params")
  params = _restore(item, like) if like is not None else None
  if params is not None:
    check_tree(params, like, pdir)
  else:
    import orbax.checkpoint as ocp
    try:
      with ocp.PyTreeCheckpointer() as ckptr:
        tree = ckptr.metadata(item).item_metadata.tree
        if like is not None:
          check_tree(tree, like, pdir)
        params = ckptr.restore(item, args=ocp.args.PyTreeRestore(restore_args=_as_numpy(tree)))
    except CheckpointError:
      raise
    except Exception as e:  # Orbax/tensorstore raise many types for a damaged directory.
      raise CheckpointError(f"checkpoint {pdir} is unreadable: {type(e).__name__}: {e}") from e
  bad = [_key(p) for p, x in jax.tree_util.tree_leaves_with_path(params)
         if np.issubdtype(np.asarray(x).dtype, np.inexact) and not np.all(np.isfinite(x))]
  if bad:
    raise CheckpointError(f"checkpoint {pdir} holds NaN or Inf in {len(bad)} parameters "
                          f"({_some(bad, ', ', 5)}); a diverged or damaged run cannot be used")
  return params, meta
