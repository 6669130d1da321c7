"""Uncompressed COCO-style run-length encoding of binary masks, as SAM's generator emits it.

Runs are over the column-major (Fortran) flattening of an [H, W] mask and start with the count of
leading zeros (0 when the first pixel is set): `{"size": [H, W], "counts": [z, o, z, o, ...]}`.
"""

import numpy as np


def masks_to_rle(masks: np.ndarray) -> list[dict]:
  """bool [N, H, W] -> N RLE dicts (vectorised over pixels: one `nonzero` per mask)."""
  masks = np.asarray(masks, bool)
  n, h, w = masks.shape
  flat = masks.transpose(0, 2, 1).reshape(n, h * w)
  out = []
  for m in flat:
    change = np.flatnonzero(m[1:] != m[:-1]) + 1
    bounds = np.concatenate([[0], change, [h * w]])
    counts = np.diff(bounds).tolist()
    out.append(dict(size=[h, w], counts=counts if not m[0] else [0] + counts))
  return out


def rle_to_mask(rle: dict) -> np.ndarray:
  """RLE dict -> bool [H, W]."""
  h, w = rle["size"]
  counts = np.asarray(rle["counts"], np.int64)
  if counts.sum() != h * w or np.any(counts < 0):
    raise ValueError(f"RLE counts sum to {counts.sum()}, size {h}x{w} needs {h * w}")
  values = np.arange(counts.size) % 2 == 1  # runs alternate 0, 1, 0, ...
  return np.repeat(values, counts).reshape(w, h).T


def area_from_rle(rle: dict) -> int:
  """Number of set pixels."""
  return int(sum(rle["counts"][1::2]))
