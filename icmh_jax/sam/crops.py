"""Point grids and crop boxes of SAM's automatic mask generator (Kirillov et al., 2023, Sec. 7.1).

Layer 0 is the whole image; crop layer i >= 1 tiles the image with 2^i x 2^i overlapping crops,
each run through the predictor on its own, with int(n / downscale^i) points per side. Boxes are
xyxy in pixels; crop boxes are exclusive at x1/y1 like slices, mask boxes are inclusive.
"""

import itertools
import math

import numpy as np


def build_point_grid(n_per_side: int) -> np.ndarray:
  """Centres of an n x n grid on [0, 1]^2, x fastest.

  Returns:
    float64 [n * n, 2] of (x, y), offsets 1/(2n) .. 1 - 1/(2n).
  """
  if n_per_side < 1:
    raise ValueError(f"points per side must be >= 1, got {n_per_side}")
  offset = 1.0 / (2 * n_per_side)
  side = np.linspace(offset, 1.0 - offset, n_per_side)
  xs = np.tile(side[None, :], (n_per_side, 1))
  ys = np.tile(side[:, None], (1, n_per_side))
  return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int,
                                scale_per_layer: int) -> list[np.ndarray]:
  """One normalised grid per crop layer 0..n_layers; layer i has int(n / scale^i) per side."""
  return [build_point_grid(int(n_per_side / (scale_per_layer ** i))) for i in range(n_layers + 1)]


def generate_crop_boxes(im_size: tuple[int, int], n_layers: int,
                        overlap_ratio: float) -> tuple[list[list[int]], list[int]]:
  """Crop boxes of every layer.

  Args:
    im_size: (H, W) of the image.
    n_layers: number of crop layers after the full image.
    overlap_ratio: overlap of neighbouring crops as a fraction of the short side (layer 1).

  Returns:
    (crop boxes xyxy (x1, y1 exclusive), layer index of each box); x-start outer, y-start inner.
  """
  im_h, im_w = im_size
  short_side = min(im_h, im_w)
  boxes, layers = [[0, 0, im_w, im_h]], [0]
  for i_layer in range(n_layers):
    n_crops = 2 ** (i_layer + 1)
    overlap = int(overlap_ratio * short_side * (2 / n_crops))
    crop_w = int(math.ceil((overlap * (n_crops - 1) + im_w) / n_crops))
    crop_h = int(math.ceil((overlap * (n_crops - 1) + im_h) / n_crops))
    x0s = [int((crop_w - overlap) * i) for i in range(n_crops)]
    y0s = [int((crop_h - overlap) * i) for i in range(n_crops)]
    for x0, y0 in itertools.product(x0s, y0s):
      boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
      layers.append(i_layer + 1)
  return boxes, layers


def uncrop_boxes_xyxy(boxes: np.ndarray, crop_box) -> np.ndarray:
  """Boxes [N, 4] in the crop frame -> image frame."""
  x0, y0 = crop_box[0], crop_box[1]
  return np.asarray(boxes) + np.array([x0, y0, x0, y0], dtype=np.asarray(boxes).dtype)


def uncrop_points(points: np.ndarray, crop_box) -> np.ndarray:
  """Points [N, 2] (x, y) in the crop frame -> image frame."""
  return np.asarray(points) + np.array([crop_box[0], crop_box[1]], dtype=np.asarray(points).dtype)


def uncrop_masks(masks: np.ndarray, crop_box, orig_h: int, orig_w: int) -> np.ndarray:
  """bool [N, h, w] masks of a crop -> bool [N, orig_h, orig_w], zero outside the crop."""
  x0, y0, x1, y1 = crop_box
  if (x0, y0, x1, y1) == (0, 0, orig_w, orig_h):
    return masks
  out = np.zeros((masks.shape[0], orig_h, orig_w), dtype=masks.dtype)
  out[:, y0:y1, x0:x1] = masks
  return out


def is_box_near_crop_edge(boxes: np.ndarray, crop_box, orig_box,
                          atol: float = 20.0) -> np.ndarray:
  """Masks cut by a crop border: some coordinate within atol of the crop's and not the image's.

  Args:
    boxes: [N, 4] inclusive xyxy boxes in the crop frame.
    crop_box: xyxy of the crop in the image.
    orig_box: xyxy of the whole image, [0, 0, W, H].
    atol: distance in pixels (|difference| <= atol counts as near).

  Returns:
    bool [N]; never true on the full-image crop.
  """
  crop = np.asarray(crop_box, np.float32)[None, :]
  orig = np.asarray(orig_box, np.float32)[None, :]
  b = uncrop_boxes_xyxy(np.asarray(boxes), crop_box).astype(np.float32)
  near_crop = np.abs(b - crop) <= atol
  near_image = np.abs(b - orig) <= atol
  return np.any(near_crop & ~near_image, axis=1)
