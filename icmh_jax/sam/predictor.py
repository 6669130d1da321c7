"""SAM v1 predictor: host-side preprocessing as the reference, jitted encoder and decoder.

Use (the automatic mask generator's contract):

  predictor = SamPredictor(params, config, points_per_batch=64)
  predictor.set_image(image_u8)              # [H, W, 3] uint8 RGB; one encoder pass per image/crop
  logits, iou = predictor.predict_points(points, labels)
  # points [P, 2] float (x, y) in pixels of the image given to set_image, labels [P] (1 fg, 0 bg);
  # logits [P, 3, H, W] float32 at that image's resolution (the 3 multimask outputs, mask = logits
  # > config.mask_threshold), iou [P, 3] float32; jax arrays on the device.

`predict_points` runs the decoder in fixed batches of `points_per_batch` prompts (the last one
padded and cut), so any P reuses one compiled decoder; each distinct image size compiles only the
postprocessing once more. Give the predictor the generator's points_per_batch: a caller that pads
its own batches to a smaller size is padded again up to the predictor's. Like the reference AMG,
its coordinates stay float64 on the host until normalised, while `predict` casts them to float32
first as `SamPredictor.predict` does. With `upscale=False` it returns the low-res logits
[P, 3, 256, 256]; `postprocess_masks` maps them to any size. `predict(...)` mirrors the
reference `SamPredictor.predict`.
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from icmh_jax.sam.mask_decoder import select_masks
from icmh_jax.sam.model import Sam, SamConfig


def get_preprocess_shape(h: int, w: int, long_side: int) -> tuple[int, int]:
  """(new_h, new_w) with the longest side = long_side, rounded half up as the reference."""
  scale = long_side * 1.0 / max(h, w)
  return int(h * scale + 0.5), int(w * scale + 0.5)


def resize_longest_side(image, long_side: int) -> np.ndarray:
  """PIL bilinear (antialiased, integer rounding) resize of a uint8 [H, W, 3] image."""
  h, w = image.shape[:2]
  new_h, new_w = get_preprocess_shape(h, w, long_side)
  if (new_h, new_w) == (h, w):
    return np.asarray(image)
  return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))


def apply_coords(coords, original_size, long_side: int) -> np.ndarray:
  """(x, y) pixels [..., 2] of the original image -> the resized frame, float64."""
  old_h, old_w = original_size
  new_h, new_w = get_preprocess_shape(old_h, old_w, long_side)
  coords = np.array(coords, dtype=np.float64)
  coords[..., 0] = coords[..., 0] * (new_w / old_w)
  coords[..., 1] = coords[..., 1] * (new_h / old_h)
  return coords


def apply_boxes(boxes, original_size, long_side: int) -> np.ndarray:
  """xyxy boxes [..., 4] -> the resized frame, float64 [B, 4]."""
  return apply_coords(np.asarray(boxes).reshape(-1, 2, 2), original_size, long_side).reshape(-1, 4)


def preprocess(resized_u8, config: SamConfig) -> np.ndarray:
  """Normalise in float32, then zero-pad bottom/right: [h, w, 3] uint8 -> [1, S, S, 3] float32."""
  s = config.img_size
  h, w = resized_u8.shape[:2]
  mean = np.asarray(config.pixel_mean, np.float32)
  std = np.asarray(config.pixel_std, np.float32)
  x = np.zeros((1, s, s, 3), np.float32)
  x[0, :h, :w] = (resized_u8.astype(np.float32) - mean) / std
  return x


def postprocess_masks(masks, input_size, original_size, img_size: int):
  """Low-res logits [B, C, h, w] -> [B, C, H, W]: bilinear to img_size, crop input_size, bilinear.

  Both resizes use half-pixel centres without antialiasing (torch's F.interpolate default).
  """
  b, c = masks.shape[:2]
  masks = jax.image.resize(masks, (b, c, img_size, img_size), "linear", antialias=False)
  masks = masks[:, :, :input_size[0], :input_size[1]]
  return jax.image.resize(masks, (b, c) + tuple(original_size), "linear", antialias=False)


class SamPredictor:
  """Image embedding once per image, then cheap prompt -> mask calls.

  Args:
    params: Flax params of `Sam(config)` (e.g. from `icmh_jax.convert.sam`).
    config: the SamConfig.
    points_per_batch: fixed decoder batch of `predict_points`.
    matmul_precision: e.g. "highest" for golden checks on GPU/TPU; None keeps JAX's default.
  """

  def __init__(self, params, config: SamConfig, *, points_per_batch: int = 64,
               matmul_precision: str | None = None):
    if points_per_batch < 1:
      raise ValueError(f"points_per_batch must be >= 1, got {points_per_batch}")
    self.params, self.config = params, config
    self.points_per_batch = points_per_batch
    self.matmul_precision = matmul_precision
    self.model = Sam(config)
    self._encode = jax.jit(self._encode_fn, static_argnums=2)
    self._decode = jax.jit(self._decode_fn, static_argnames=("sizes",))
    self._decode_points = jax.jit(self._points_fn)
    self._postprocess = jax.jit(postprocess_masks, static_argnums=(1, 2, 3))
    self.reset_image()

  def reset_image(self):
    """Forgets the current image."""
    self.features = None
    self.original_size = self.input_size = None

  def _precision(self):
    if self.matmul_precision is None:  # keep whatever precision the caller has set
      return contextlib.nullcontext()
    return jax.default_matmul_precision(self.matmul_precision)

  def _encode_fn(self, params, x, with_intermediates: bool):
    if with_intermediates:
      return self.model.apply({"params": params}, x, method=Sam.encode_image,
                              mutable=["intermediates"])
    return self.model.apply({"params": params}, x, method=Sam.encode_image), None

  def set_image(self, image, *, return_intermediates: bool = False):
    """Computes the image embedding of a uint8 RGB image [H, W, 3].

    Returns:
      None, or with return_intermediates the encoder's sown intermediates (see ImageEncoderViT).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
      raise ValueError(f"set_image needs a uint8 [H, W, 3] RGB image, got {image.dtype} "
                       f"{image.shape}")
    resized = resize_longest_side(image, self.config.img_size)
    x = preprocess(resized, self.config)
    with self._precision():
      self.features, inter = self._encode(self.params, x, return_intermediates)
    self.original_size = image.shape[:2]
    self.input_size = resized.shape[:2]
    return None if inter is None else inter["intermediates"]["image_encoder"]

  def _decode_fn(self, params, features, points, labels, boxes, masks, *, sizes):
    sparse, dense = self.model.apply({"params": params}, points, labels, boxes, masks,
                                     method=Sam.encode_prompts)
    lowres, iou = self.model.apply({"params": params}, features, sparse, dense,
                                   method=Sam.decode_masks)
    upscaled = postprocess_masks(lowres, *sizes, self.config.img_size)
    return dict(sparse=sparse, dense=dense, lowres=lowres, iou=iou, upscaled=upscaled)

  def _points_fn(self, params, features, points, labels):
    sparse, dense = self.model.apply({"params": params}, points, labels, normalized=True,
                                     method=Sam.encode_prompts)
    lowres, iou = self.model.apply({"params": params}, features, sparse, dense,
                                   method=Sam.decode_masks)
    return select_masks(lowres, iou, True)

  def _require_image(self):
    if self.features is None:
      raise ValueError("no image: call set_image(image) before predicting")

  def predict_all(self, point_coords=None, point_labels=None, box=None, mask_input=None):
    """Every decoder output for one prompt, in the resized (model) frame; for golden checks.

    Args:
      point_coords: [N, 2] (x, y) original-image pixels, with point_labels [N].
      box: [4] xyxy original-image pixels.
      mask_input: [1, 256, 256] low-res logits from an earlier call.

    Returns:
      dict of numpy arrays: sparse [1, N', C], dense [1, h, w, C], lowres [1, 1+K, 256, 256],
      iou [1, 1+K], upscaled [1, 1+K, H, W] logits at the original size.
    """
    self._require_image()
    points = labels = boxes = masks = None
    long_side = self.config.img_size
    if point_coords is not None:
      if point_labels is None:
        raise ValueError("point_labels must be given with point_coords")
      points = apply_coords(point_coords, self.original_size, long_side)
      points = points.astype(np.float32).reshape(1, -1, 2)
      labels = np.asarray(point_labels, np.int32).reshape(1, -1)
      if labels.shape[1] != points.shape[1]:
        raise ValueError(f"{points.shape[1]} points but {labels.shape[1]} labels")
    if box is not None:
      boxes = apply_boxes(box, self.original_size, long_side).astype(np.float32)[:1]
    if mask_input is not None:
      masks = np.asarray(mask_input, np.float32).reshape(1, *np.shape(mask_input)[-2:], 1)
    sizes = (tuple(self.input_size), tuple(self.original_size))
    with self._precision():
      out = self._decode(self.params, self.features, points, labels, boxes, masks, sizes=sizes)
    return jax.tree.map(np.asarray, out)

  def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None,
              multimask_output: bool = True, return_logits: bool = False):
    """The reference `SamPredictor.predict`.

    Returns:
      masks [C, H, W] (bool, or float32 logits with return_logits), iou [C], lowres logits
      [C, 256, 256], with C = 3 for multimask_output else 1.
    """
    out = self.predict_all(point_coords, point_labels, box, mask_input)
    masks, iou = select_masks(out["upscaled"], out["iou"], multimask_output)
    lowres, _ = select_masks(out["lowres"], out["iou"], multimask_output)
    if not return_logits:
      masks = masks > self.config.mask_threshold
    return masks[0], iou[0], lowres[0]

  def predict_points(self, points, labels, *, upscale: bool = True):
    """One single-point prompt per row, 3 multimask outputs each (see the module docstring).

    Args:
      points: [P, 2] (x, y) pixels of the image given to set_image (float64 is kept).
      labels: [P] ints, 1 foreground / 0 background.
      upscale: False returns low-res logits [P, 3, 256, 256] instead of [P, 3, H, W].

    Returns:
      logits float32 [P, 3, H, W] (or low-res), iou float32 [P, 3]; jax arrays left on the
      device (np.asarray them for host work).
    """
    self._require_image()
    points = np.asarray(points, np.float64).reshape(-1, 2)
    labels = np.asarray(labels, np.int32).reshape(-1)
    if labels.shape[0] != points.shape[0]:
      raise ValueError(f"{points.shape[0]} points but {labels.shape[0]} labels")
    s = self.config.img_size
    # The reference AMG normalises in float64 and casts to float32 only for the projection.
    norm = ((apply_coords(points, self.original_size, s) + 0.5) / s).astype(np.float32)
    n, bs = points.shape[0], self.points_per_batch
    logits, ious = [], []
    for start in range(0, n, bs):
      pts, lab = norm[start:start + bs], labels[start:start + bs]
      pad = bs - pts.shape[0]
      pts = np.concatenate([pts, np.repeat(pts[:1], pad, 0)])[:, None]
      lab = np.concatenate([lab, np.repeat(lab[:1], pad, 0)])[:, None]
      with self._precision():
        masks, iou = self._decode_points(self.params, self.features, pts, lab)
        if upscale:
          masks = self._postprocess(masks, tuple(self.input_size), tuple(self.original_size),
                                    s)
      logits.append(masks[:bs - pad] if pad else masks)
      ious.append(iou[:bs - pad] if pad else iou)
    if not logits:
      h, w = self.original_size if upscale else (4 * self.config.embedding_size,) * 2
      k = self.config.num_multimask_outputs
      return jnp.zeros((0, k, h, w), jnp.float32), jnp.zeros((0, k), jnp.float32)
    if len(logits) == 1:
      return logits[0], ious[0]
    return jnp.concatenate(logits), jnp.concatenate(ious)
