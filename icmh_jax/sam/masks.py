"""Mask scoring and cleaning for SAM's automatic mask generator (Kirillov et al., 2023, Sec. 7.1).

Stability score, inclusive bounding boxes, greedy box NMS and small-region removal, with the
reference's exact comparisons (strict / non-strict, NaN for empty masks and zero-area boxes).
`stability_counts` and `masks_to_boxes` take numpy or JAX arrays (they run inside jit).
"""

import numpy as np


def _xp(x):
  if isinstance(x, np.ndarray):
    return np
  import jax.numpy as jnp
  return jnp


def stability_counts(logits, mask_threshold: float = 0.0, offset: float = 1.0):
  """Pixel counts above threshold + offset and above threshold - offset (strict >).

  Args:
    logits: float [..., H, W] mask logits.

  Returns:
    (intersections, unions), int32 [...].
  """
  xp = _xp(logits)
  inter = xp.sum(logits > (mask_threshold + offset), axis=(-2, -1), dtype=xp.int32)
  union = xp.sum(logits > (mask_threshold - offset), axis=(-2, -1), dtype=xp.int32)
  return inter, union


def stability_ratio(inter, union) -> np.ndarray:
  """float32 IoU of the two thresholded masks; NaN where no logit exceeds threshold - offset."""
  inter, union = np.asarray(inter), np.asarray(union)
  with np.errstate(divide="ignore", invalid="ignore"):
    # float64 division rounded once to float32 equals torch's float32 division (53 >= 2*24 + 2).
    return (inter.astype(np.float64) / union.astype(np.float64)).astype(np.float32)


def stability_score(logits, mask_threshold: float = 0.0, offset: float = 1.0) -> np.ndarray:
  """IoU between the masks at threshold +- offset: float32 [...] (NaN if the union is empty)."""
  return stability_ratio(*stability_counts(logits, mask_threshold, offset))


def masks_to_boxes(masks):
  """Inclusive xyxy boxes of binary masks.

  Args:
    masks: bool [..., H, W].

  Returns:
    int32 [..., 4] (x0, y0, x1, y1) with x1/y1 the last set column/row; [0, 0, 0, 0] if empty.
  """
  xp = _xp(masks)
  h, w = masks.shape[-2:]
  cols = xp.any(masks, axis=-2)
  rows = xp.any(masks, axis=-1)
  x0 = xp.argmax(cols, axis=-1)
  x1 = w - 1 - xp.argmax(cols[..., ::-1], axis=-1)
  y0 = xp.argmax(rows, axis=-1)
  y1 = h - 1 - xp.argmax(rows[..., ::-1], axis=-1)
  boxes = xp.stack([x0, y0, x1, y1], axis=-1).astype(xp.int32)
  return xp.where(xp.any(cols, axis=-1)[..., None], boxes, 0)


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
  """Greedy NMS (torchvision.ops.nms on CPU): highest score first, ties in index order.

  Areas are (x1 - x0) * (y1 - y0) of the coordinates as given, in float32; a box is suppressed
  when its IoU with a kept box is > iou_threshold (strict). Two zero-area boxes give 0/0 = NaN
  and never suppress each other.

  Args:
    boxes: [N, 4] xyxy.
    scores: [N].
    iou_threshold: float.

  Returns:
    int64 [K] indices of the kept boxes in descending score order.
  """
  b = np.asarray(boxes, np.float32).reshape(-1, 4)
  s = np.asarray(scores, np.float32).reshape(-1)
  if b.shape[0] != s.shape[0]:
    raise ValueError(f"{b.shape[0]} boxes but {s.shape[0]} scores")
  order = np.argsort(-s, kind="stable")
  b = b[order]
  areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
  suppressed = np.zeros(len(order), bool)
  keep = []
  with np.errstate(divide="ignore", invalid="ignore"):
    for i in range(len(order)):
      if suppressed[i]:
        continue
      keep.append(order[i])
      rest = b[i + 1:]
      w = np.maximum(np.float32(0), np.minimum(b[i, 2], rest[:, 2]) - np.maximum(b[i, 0], rest[:, 0]))
      h = np.maximum(np.float32(0), np.minimum(b[i, 3], rest[:, 3]) - np.maximum(b[i, 1], rest[:, 1]))
      inter = w * h
      iou = inter / (areas[i] + areas[i + 1:] - inter)
      suppressed[i + 1:] |= iou > np.float32(iou_threshold)
  return np.asarray(keep, np.int64)


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
  """Fills small holes or drops small islands of one mask (8-connectivity, OpenCV labelling).

  Args:
    mask: bool [H, W].
    area_thresh: components with fewer pixels than this are small.
    mode: "holes" (fill small background components, the outer background included if small)
      or "islands" (drop small foreground components; if every one is small, keep the largest).

  Returns:
    (new mask bool [H, W], whether anything changed).
  """
  import cv2
  if mode not in ("holes", "islands"):
    raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
  holes = mode == "holes"
  working = (np.asarray(mask, bool) ^ holes).astype(np.uint8)
  n_labels, regions, stats, _ = cv2.connectedComponentsWithStats(working, connectivity=8)
  sizes = stats[1:, cv2.CC_STAT_AREA]
  small = np.flatnonzero(sizes < area_thresh) + 1
  if small.size == 0:
    return np.asarray(mask, bool), False
  fill = np.concatenate([[0], small])
  if not holes:
    fill = np.setdiff1d(np.arange(n_labels), fill)
    if fill.size == 0:
      fill = np.array([int(np.argmax(sizes)) + 1])
  return np.isin(regions, fill), True
