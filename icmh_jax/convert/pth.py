"""Reading PyTorch checkpoints (`.pth`) as {key: numpy array}, safely and without torch at import.

`.pth` files are pickles, so they are only opened with `torch.load(weights_only=True)`, which
refuses arbitrary objects. An `.npz` holding the same keys is accepted too (no torch needed).
"""

import pathlib

import numpy as np

from icmh_jax.errors import CheckpointError


def load_pth(path) -> dict[str, np.ndarray]:
  """Loads a PyTorch state_dict.

  Accepts a bare state_dict or a training checkpoint holding one under "state_dict" / "model"
  (LIC_TCM's train.py saves {"state_dict": ..., "optimizer": ...}); strips a DataParallel
  "module." prefix.

  Args:
    path: a .pth / .pt / .tar file.

  Returns:
    {key: float32 / int numpy array} in PyTorch layouts.

  Raises:
    CheckpointError: torch is not installed, the file is missing or holds no state_dict.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise CheckpointError(f"checkpoint not found: {path}")
  try:
    import torch  # lazy: an optional dependency
  except ImportError as e:
    raise CheckpointError(f"reading {path} needs PyTorch (pip install torch); or pass the "
                          "state_dict as an .npz of numpy arrays") from e
  try:
    obj = torch.load(path, weights_only=True, map_location="cpu")
  except Exception as e:  # corrupt file, or a pickle weights_only refuses
    raise CheckpointError(f"cannot read {path} with torch.load(weights_only=True): {e}") from e
  for key in ("state_dict", "model"):
    if isinstance(obj, dict) and isinstance(obj.get(key), dict):
      obj = obj[key]
  if not isinstance(obj, dict) or not obj:
    raise CheckpointError(f"{path} holds no state_dict (got {type(obj).__name__})")
  out = {}
  for k, v in obj.items():
    if not hasattr(v, "detach"):
      continue  # e.g. metadata entries
    k = k[len("module."):] if k.startswith("module.") else k
    out[k] = v.detach().cpu().numpy()
  return out


def load_state_dict(path) -> dict[str, np.ndarray]:
  """`load_pth` for .pth files; an .npz of numpy arrays is read directly."""
  path = pathlib.Path(path)
  if path.suffix == ".npz":
    if not path.is_file():
      raise CheckpointError(f"checkpoint not found: {path}")
    with np.load(path) as z:
      return {k: z[k] for k in z.files}
  return load_pth(path)
