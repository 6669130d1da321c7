"""Reading PyTorch checkpoints (`.pth`) as {key: numpy array}, safely and without torch at import.

`.pth` files are pickles, so they are only opened with `torch.load(weights_only=True)`, which
refuses arbitrary objects. An `.npz` holding the same keys is accepted too (no torch needed).
bfloat16 tensors (numpy has no such type) and NaN / Inf values are refused with the tensors named.
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
  tensors = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()
             if hasattr(v, "detach")}  # skips metadata entries
  bf16 = [k for k, v in tensors.items() if v.dtype == torch.bfloat16]
  if bf16:
    raise CheckpointError(f"{path} holds {len(bf16)} bfloat16 tensors ({_first(bf16)}); numpy "
                          "cannot read them: save the state_dict as float32 first "
                          "({k: v.float() for k, v in state_dict.items()})")
  return {k: v.detach().cpu().numpy() for k, v in tensors.items()}


def _first(keys, n=5) -> str:
  return ", ".join(keys[:n]) + (f", ... and {len(keys) - n} more" if len(keys) > n else "")


def check_finite(state_dict: dict, path) -> None:
  """Raises `CheckpointError` naming the tensors of `state_dict` that hold NaN or Inf."""
  bad = [k for k, v in state_dict.items()
         if np.issubdtype(v.dtype, np.floating) and not np.all(np.isfinite(v))]
  if bad:
    raise CheckpointError(f"{path} holds NaN or Inf in {len(bad)} tensors ({_first(bad)}); "
                          "refusing to convert a diverged or damaged checkpoint")


def load_state_dict(path) -> dict[str, np.ndarray]:
  """`load_pth` for .pth files; an .npz of numpy arrays is read directly. Either way every
  floating tensor must be finite (`check_finite`).

  Raises:
    CheckpointError: unreadable file, bfloat16 tensors, NaN or Inf values.
  """
  path = pathlib.Path(path)
  if path.suffix == ".npz":
    if not path.is_file():
      raise CheckpointError(f"checkpoint not found: {path}")
    try:
      with np.load(path) as z:
        sd = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
      raise CheckpointError(f"cannot read {path} as an .npz of arrays: {e}") from e
  else:
    sd = load_pth(path)
  check_finite(sd, path)
  return sd
