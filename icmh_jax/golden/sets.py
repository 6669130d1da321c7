"""Reading a golden set (`NAME_golden.npz` + the `.json` beside it) for `icmh golden-check`.

A set that lacks a key a checker asks for (an npz array or a JSON field) is reported as one
`GoldenSetError` naming the key and the file, never as a `KeyError` traceback. Arrays the set's
JSON lists under `omitted_arrays` (`{key: why}`, e.g. the TCM set's `cmp/x_hat`, which equals
`clip(fwd/x_hat, 0, 1)` and is not stored twice) are known to be absent: a checker asks
`omitted(key)` and derives them as the set says.
"""

import json
import pathlib

import numpy as np

from icmh_jax.errors import IcmhError


class GoldenSetError(IcmhError):
  """A golden set lacks something the checker needs, or cannot be read."""


class GoldenMeta(dict):
  """The set's JSON; a missing key raises `GoldenSetError` instead of `KeyError`."""

  def __init__(self, mapping, source):
    super().__init__(mapping)
    self.source = source

  def __missing__(self, key):
    raise GoldenSetError(f"golden set {self.source} has no JSON field {key!r}; "
                         "it does not fit this checker")


class GoldenArrays:
  """The set's arrays, read lazily like `np.load`'s NpzFile (`files`, `in`, `[key]`).

  Attributes:
    files: the stored array names.
    omitted_arrays: {name: why} of arrays the set leaves out on purpose.
  """

  def __init__(self, npz, omitted_arrays, source):
    self._npz, self.source = npz, source
    self.files = list(npz.files)
    self.omitted_arrays = dict(omitted_arrays or {})

  def __contains__(self, key) -> bool:
    return key in self.files

  def omitted(self, key) -> str | None:
    """Why the set leaves `key` out (its `omitted_arrays` entry), or None."""
    return self.omitted_arrays.get(key)

  def __getitem__(self, key) -> np.ndarray:
    if key in self.files:
      return self._npz[key]
    if key in self.omitted_arrays:
      raise GoldenSetError(f"golden set {self.source} omits array {key!r} "
                           f"({self.omitted_arrays[key]}) and the checker has no rule for it")
    raise GoldenSetError(f"golden set {self.source} has no array {key!r}; it does not fit this "
                         "checker")


def load_set(npz_path, json_path) -> tuple[GoldenArrays, GoldenMeta]:
  """(arrays, meta) of a golden set.

  Raises:
    GoldenSetError: a file is unreadable or not what its name says.
  """
  json_path = pathlib.Path(json_path)
  try:
    meta = json.loads(json_path.read_text(),
                      object_hook=lambda d: GoldenMeta(d, json_path.name))
    npz = np.load(npz_path)
  except (OSError, ValueError) as e:
    raise GoldenSetError(f"cannot read golden set {npz_path} / {json_path.name}: {e}") from e
  if not isinstance(meta, dict):
    raise GoldenSetError(f"golden JSON {json_path} is not an object")
  return GoldenArrays(npz, meta.get("omitted_arrays"), pathlib.Path(npz_path).name), meta
