"""SA-ICM edge maps: SAM masks -> uint8 label map -> Canny -> 1-px object boundaries.

The rule (SA-ICM's public code has none; this is the one the golden set uses): sort the masks by
area, largest first, ties in generator order (stable); paint labels rank + 1 so smaller masks win
overlaps and background stays 0; `cv2.Canny(label, 0, 0, apertureSize=3, L2gradient=False) > 0`.
Zero thresholds keep every non-maximum-suppressed pixel with a non-zero gradient, i.e. every label
change thinned to one pixel. The `canny` mask source runs Canny on the photo itself, for runs
without a SAM checkpoint.
"""

from typing import Sequence

import numpy as np

MAX_MASKS = 255  # labels are uint8 (Canny needs 8-bit input) and 0 is the background


def _stack_masks(masks) -> np.ndarray:
  """Generator records (`segmentation` a bool mask or an RLE dict) or bool [N, H, W] -> bool
  [N, H, W]."""
  if isinstance(masks, np.ndarray):
    m = masks
  else:
    masks = list(masks)
    if masks and isinstance(masks[0], dict):
      from icmh_jax.sam.rle import rle_to_mask
      masks = [r["segmentation"] if isinstance(r["segmentation"], np.ndarray)
               else rle_to_mask(r["segmentation"]) for r in masks]
    m = np.stack(masks) if masks else np.zeros((0, 0, 0), bool)
  if m.ndim != 3 or m.dtype != bool:
    raise ValueError(f"masks must be bool [N, H, W], got {m.dtype} with shape {m.shape}")
  return m


def label_map(masks: np.ndarray | Sequence[dict], shape: tuple[int, int] | None = None) -> np.ndarray:
  """Paints masks into a label map, smaller masks on top.

  Args:
    masks: bool [N, H, W] in generator order, or the generator's list of records.
    shape: (H, W), needed only when there are no masks.

  Returns:
    uint8 [H, W]: 0 background, k = the k-th largest mask (stable order on ties) where it is
    the smallest mask covering the pixel.
  """
  m = _stack_masks(masks)
  n = m.shape[0]
  if n > MAX_MASKS:
    raise ValueError(f"{n} masks do not fit a uint8 label map (at most {MAX_MASKS}); raise the "
                     "generator's thresholds or min_mask_region_area")
  if n == 0:
    if shape is None:
      raise ValueError("no masks: pass shape=(H, W) for the empty label map")
    return np.zeros(shape, np.uint8)
  order = np.argsort(-m.sum(axis=(1, 2)), kind="stable")
  ranks = np.arange(1, n + 1, dtype=np.uint8)[:, None, None]
  # Painting in rank order = taking the largest rank that covers a pixel.
  return np.max(np.where(m[order], ranks, np.uint8(0)), axis=0)


def edges_of_label_map(label: np.ndarray) -> np.ndarray:
  """uint8 [H, W] labels -> bool [H, W] one-pixel boundaries between different labels."""
  import cv2
  label = np.ascontiguousarray(label, np.uint8)
  return cv2.Canny(label, 0, 0, apertureSize=3, L2gradient=False) > 0


def edge_map(masks: np.ndarray | Sequence[dict], shape: tuple[int, int] | None = None) -> np.ndarray:
  """The SA-ICM edge map m of SAM masks: bool [H, W] (see `label_map` for the arguments)."""
  return edges_of_label_map(label_map(masks, shape))


def canny_edge_map(image_u8: np.ndarray, sigma: float = 0.33) -> np.ndarray:
  """The `canny` mask source: Canny edges of the photo itself (no SAM checkpoint needed).

  The grey image is smoothed with a 5x5 Gaussian (sigma 1.0, against sensor noise and JPEG
  blocks) and Canny runs with automatic thresholds around the median grey level,
  [max(0, (1 - sigma) * median), min(255, (1 + sigma) * median)], with the L2 gradient norm.

  Args:
    image_u8: uint8 [H, W, 3] RGB (or [H, W] grey).
    sigma: relative spread of the thresholds around the median.

  Returns:
    bool [H, W].
  """
  import cv2
  img = np.asarray(image_u8)
  if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
    raise ValueError(f"image must be uint8 [H, W, 3] or [H, W], got {img.dtype} {img.shape}")
  grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
  grey = cv2.GaussianBlur(grey, (5, 5), 1.0)
  median = float(np.median(grey))
  lo, hi = max(0.0, (1.0 - sigma) * median), min(255.0, (1.0 + sigma) * median)
  return cv2.Canny(grey, lo, hi, apertureSize=3, L2gradient=True) > 0
