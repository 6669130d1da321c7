"""SAM's automatic mask generator (Kirillov et al., Segment Anything, 2023, Sec. 7.1 / App. B).

A grid of single-point prompts per crop (the whole image, then optional crop layers), 3 masks per
point; masks are kept when their predicted IoU is > pred_iou_thresh, their stability score is
>= stability_score_thresh and they do not touch an interior crop border; box NMS within each crop
(scores = predicted IoU) and across crops (scores = 1 / crop area, smaller crops win); optional
small-region cleanup. Semantics and defaults are the reference's (facebookresearch/segment-anything
v1, `SamAutomaticMaskGenerator`); per-pixel work runs vectorised in JAX, the bookkeeping in numpy.

The predictor is any object with `set_image(image_u8 [h, w, 3])` and `predict_points(points
[P, 2] float (x, y) pixels of that image, labels [P] int) -> (logits [P, 3, h, w], iou [P, 3])`
(the three multimask outputs at the image's resolution); `reset_image()` is called if present.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.sam import crops, masks as mask_ops, rle

OUTPUT_MODES = ("binary_mask", "uncompressed_rle")


@functools.partial(jax.jit, static_argnames=("mask_threshold", "offset"))
def candidate_stats(logits, mask_threshold: float = 0.0, offset: float = 1.0):
  """Per-candidate statistics of mask logits, on device.

  Args:
    logits: float [C, h, w].

  Returns:
    (stability intersections int32 [C], unions int32 [C], inclusive boxes int32 [C, 4],
    packed binary masks uint8 [C, h, ceil(w / 8)]).
  """
  inter, union = mask_ops.stability_counts(logits, mask_threshold, offset)
  binary = logits > mask_threshold
  return inter, union, mask_ops.masks_to_boxes(binary), jnp.packbits(binary, axis=-1)


def _take(table: dict, idx) -> dict:
  return {k: v[idx] for k, v in table.items()}


def _cat(tables: list[dict]) -> dict:
  return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


class AutomaticMaskGenerator:
  """Segments everything in an image with a SAM predictor (see the module docstring).

  Args mirror the reference: points_per_side (None when point_grids is given), points_per_batch,
  pred_iou_thresh (skipped if <= 0), stability_score_thresh (skipped if <= 0),
  stability_score_offset, box_nms_thresh, crop_n_layers, crop_nms_thresh, crop_overlap_ratio,
  crop_n_points_downscale_factor, point_grids (list of normalised [n, 2] grids, one per layer),
  min_mask_region_area (0 = no cleanup), output_mode ("binary_mask" or "uncompressed_rle").
  """

  def __init__(self, predictor, points_per_side: int | None = 32, points_per_batch: int = 64,
               pred_iou_thresh: float = 0.88, stability_score_thresh: float = 0.95,
               stability_score_offset: float = 1.0, box_nms_thresh: float = 0.7,
               crop_n_layers: int = 0, crop_nms_thresh: float = 0.7,
               crop_overlap_ratio: float = 512 / 1500, crop_n_points_downscale_factor: int = 1,
               point_grids: list[np.ndarray] | None = None, min_mask_region_area: int = 0,
               output_mode: str = "binary_mask"):
    if (points_per_side is None) == (point_grids is None):
      raise ValueError("give exactly one of points_per_side and point_grids")
    if output_mode not in OUTPUT_MODES:
      raise ValueError(f"output_mode {output_mode!r} not supported; use one of {OUTPUT_MODES}")
    if points_per_batch < 1 or crop_n_layers < 0:
      raise ValueError(f"need points_per_batch >= 1 and crop_n_layers >= 0, got "
                       f"{points_per_batch} and {crop_n_layers}")
    if point_grids is None:
      point_grids = crops.build_all_layer_point_grids(points_per_side, crop_n_layers,
                                                      crop_n_points_downscale_factor)
    elif len(point_grids) != crop_n_layers + 1:
      raise ValueError(f"{len(point_grids)} point grids for {crop_n_layers + 1} crop layers")
    self.predictor = predictor
    self.point_grids = [np.asarray(g, np.float64) for g in point_grids]
    self.points_per_batch = points_per_batch
    self.pred_iou_thresh = pred_iou_thresh
    self.stability_score_thresh = stability_score_thresh
    self.stability_score_offset = stability_score_offset
    self.box_nms_thresh = box_nms_thresh
    self.crop_n_layers = crop_n_layers
    self.crop_nms_thresh = crop_nms_thresh
    self.crop_overlap_ratio = crop_overlap_ratio
    self.min_mask_region_area = min_mask_region_area
    self.output_mode = output_mode
    config = getattr(predictor, "config", None)
    self.mask_threshold = float(getattr(config, "mask_threshold", 0.0))

  def generate(self, image_u8: np.ndarray) -> list[dict]:
    """All masks of an image.

    Args:
      image_u8: uint8 [H, W, 3] RGB.

    Returns:
      One dict per mask, in generator order: segmentation (bool [H, W] or an RLE dict), area
      (pixels), bbox [x0, y0, x1 - x0, y1 - y0] with inclusive x1/y1, predicted_iou,
      point_coords [[x, y]] (image pixels), stability_score, crop_box [x, y, w, h].
    """
    image = np.asarray(image_u8)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
      raise ValueError(f"image must be uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}")
    table = self.generate_table(image)
    if self.min_mask_region_area > 0 and len(table["iou_preds"]):
      table = self.remove_small_regions(table, image.shape[:2])
    return self._records(table, image.shape[:2])

  def generate_table(self, image: np.ndarray) -> dict:
    """Masks after filters and both NMS stages, as arrays (masks packed, image frame)."""
    orig_size = image.shape[:2]
    boxes, layers = crops.generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
    table = _cat([self._process_crop(image, b, i, orig_size) for b, i in zip(boxes, layers)])
    return self.merge_crops(table) if len(boxes) > 1 else table

  def _process_crop(self, image, crop_box, layer_idx, orig_size) -> dict:
    x0, y0, x1, y1 = crop_box
    crop = image[y0:y1, x0:x1]
    h, w = crop.shape[:2]
    self.predictor.set_image(crop)
    points = self.point_grids[layer_idx] * np.array([[w, h]], np.float64)
    tables = [self._process_batch(points[s:s + self.points_per_batch], crop_box, orig_size)
              for s in range(0, len(points), self.points_per_batch)]
    if hasattr(self.predictor, "reset_image"):
      self.predictor.reset_image()
    return self.reduce_crop(_cat(tables), crop_box, orig_size)

  def _process_batch(self, points, crop_box, orig_size) -> dict:
    n = len(points)
    # Pad to a fixed batch (repeating the last point) so every batch reuses one compilation.
    padded = np.concatenate([points, np.repeat(points[-1:], self.points_per_batch - n, 0)])
    logits, iou = self.predictor.predict_points(padded, np.ones(len(padded), np.int32))
    k = logits.shape[1]
    # Statistics of the padded batch (one compilation per crop size), padding cut on the host.
    stats = candidate_stats(jnp.reshape(logits, (-1,) + logits.shape[2:]), self.mask_threshold,
                            self.stability_score_offset)
    inter, union, boxes, packed = (np.asarray(a)[:n * k] for a in stats)
    table = dict(iou_preds=np.asarray(iou, np.float32)[:n].reshape(-1),
                 stability_score=mask_ops.stability_ratio(inter, union),
                 boxes=boxes, points=np.repeat(points, k, axis=0), masks=packed)
    return _take(table, self.select(table, crop_box, orig_size))

  def select(self, table: dict, crop_box, orig_size) -> np.ndarray:
    """Indices of candidates passing the IoU, stability and crop-edge filters.

    Args:
      table: iou_preds [C], stability_score [C], boxes [C, 4] inclusive xyxy in the crop frame.
      crop_box: xyxy of the crop; orig_size: (H, W) of the image.
    """
    keep = np.ones(len(table["iou_preds"]), bool)
    if self.pred_iou_thresh > 0.0:
      keep &= table["iou_preds"] > np.float32(self.pred_iou_thresh)
    if self.stability_score_thresh > 0.0:
      keep &= table["stability_score"] >= np.float32(self.stability_score_thresh)
    orig_box = [0, 0, orig_size[1], orig_size[0]]
    keep &= ~crops.is_box_near_crop_edge(table["boxes"], crop_box, orig_box)
    return np.flatnonzero(keep)

  def reduce_crop(self, table: dict, crop_box, orig_size) -> dict:
    """Box NMS within a crop (scores = predicted IoU), then to the image frame."""
    table = _take(table, mask_ops.box_nms(table["boxes"], table["iou_preds"], self.box_nms_thresh))
    table["boxes"] = crops.uncrop_boxes_xyxy(table["boxes"], crop_box)
    table["points"] = crops.uncrop_points(table["points"], crop_box)
    table["crop_boxes"] = np.tile(np.asarray(crop_box, np.int32), (len(table["boxes"]), 1))
    full = list(crop_box) == [0, 0, orig_size[1], orig_size[0]]
    if "masks" in table and not full:
      h, w = crop_box[3] - crop_box[1], crop_box[2] - crop_box[0]
      m = np.unpackbits(table["masks"], axis=-1, count=w).astype(bool).reshape(-1, h, w)
      table["masks"] = np.packbits(crops.uncrop_masks(m, crop_box, *orig_size), axis=-1)
    return table

  def merge_crops(self, table: dict) -> dict:
    """Box NMS across crops with score 1 / crop area: masks from smaller crops win."""
    cb = table["crop_boxes"].astype(np.int64)
    scores = (1.0 / ((cb[:, 2] - cb[:, 0]) * (cb[:, 3] - cb[:, 1]))).astype(np.float32)
    return _take(table, mask_ops.box_nms(table["boxes"], scores, self.crop_nms_thresh))

  def remove_small_regions(self, table: dict, orig_size) -> dict:
    """Fills holes and drops islands below min_mask_region_area, then NMS preferring unchanged
    masks; predicted IoU and stability keep their values, boxes of changed masks are redone."""
    h, w = orig_size
    m = np.unpackbits(table["masks"], axis=-1, count=w).astype(bool).reshape(-1, h, w)
    new, scores = [], []
    for mask in m:
      mask, holes = mask_ops.remove_small_regions(mask, self.min_mask_region_area, "holes")
      mask, islands = mask_ops.remove_small_regions(mask, self.min_mask_region_area, "islands")
      new.append(mask)
      scores.append(0.0 if holes or islands else 1.0)
    new = np.stack(new)
    boxes = mask_ops.masks_to_boxes(new)
    scores = np.asarray(scores, np.float32)
    keep = mask_ops.box_nms(boxes, scores, max(self.box_nms_thresh, self.crop_nms_thresh))
    table = {k: v.copy() for k, v in table.items()}
    changed = keep[scores[keep] == 0.0]
    table["masks"][changed] = np.packbits(new[changed], axis=-1)
    table["boxes"][changed] = boxes[changed]
    return _take(table, keep)

  def _records(self, table: dict, orig_size) -> list[dict]:
    h, w = orig_size
    m = np.unpackbits(table["masks"], axis=-1, count=w).astype(bool).reshape(-1, h, w)
    segs = list(m) if self.output_mode == "binary_mask" else rle.masks_to_rle(m)
    areas = m.sum(axis=(1, 2))
    out = []
    for i, seg in enumerate(segs):
      x0, y0, x1, y1 = (int(v) for v in table["boxes"][i])
      cx0, cy0, cx1, cy1 = (int(v) for v in table["crop_boxes"][i])
      out.append(dict(segmentation=seg, area=int(areas[i]), bbox=[x0, y0, x1 - x0, y1 - y0],
                      predicted_iou=float(table["iou_preds"][i]),
                      point_coords=[[float(v) for v in table["points"][i]]],
                      stability_score=float(table["stability_score"][i]),
                      crop_box=[cx0, cy0, cx1 - cx0, cy1 - cy0]))
    return out
