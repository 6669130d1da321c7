"""Where a converter may write: never over a user's folder, only over a params directory of ours.

`icmh convert FAMILY CKPT OUT_DIR` writes a params directory (`icmh_jax.params_io`), which replaces
whatever is at OUT_DIR. So OUT_DIR must not exist, be empty, or (with `overwrite`) be a params
directory an earlier conversion or training wrote: `params/` and `meta/metadata` (a JSON object
naming a `system`) beside Orbax's own bookkeeping files, nothing else. `icmh convert tcm x.pth ~`
therefore never touches the home folder, with or without `--overwrite`.
"""

import json
import pathlib

from icmh_jax.errors import CheckpointError

# Top-level files Orbax writes into a params directory beside the `params` and `meta` items.
_ORBAX_FILES = ("_CHECKPOINT_METADATA", "commit_success.txt")


def is_params_dir(path) -> bool:
  """True when `path` is a params directory as `params_io.save_params` writes it, and no more."""
  path = pathlib.Path(path)
  if path.is_symlink() or not path.is_dir() or not (path / "params").is_dir():
    return False
  try:
    meta = json.loads((path / "meta" / "metadata").read_text())
  except (OSError, ValueError):
    return False
  if not isinstance(meta, dict) or not isinstance(meta.get("system"), str):
    return False
  return all(p.name in ("params", "meta") + _ORBAX_FILES for p in path.iterdir())


def check_target(path, overwrite: bool = False) -> None:
  """Raises `CheckpointError` unless a params directory may be written at `path`.

  Args:
    path: the output directory.
    overwrite: allow replacing an existing params directory of ours (never anything else).
  """
  path = pathlib.Path(path)
  if not path.exists() and not path.is_symlink():
    return
  if path.is_symlink() or not path.is_dir():
    raise CheckpointError(f"{path} exists and is not a directory; give a new OUT_DIR")
  if not any(path.iterdir()):
    return
  if not is_params_dir(path):
    raise CheckpointError(f"{path} is a non-empty directory that is not an icmh params directory; "
                          "refusing to replace it (even with --overwrite); give a new OUT_DIR")
  if not overwrite:
    raise CheckpointError(f"{path} already holds a params directory; pass --overwrite to "
                          "replace it")
