"""Automatic-mask-generator and SA-ICM edge-map rows of `icmh golden-check sam`.

For every AMG config of the golden JSON (`amg.configs`), the generator runs with the port's
predictor on the golden image and is compared with `amg/<config>/...`: mask count equal, areas
within 0.1 %, each mask's pixels equal on >= 99.9 % of the image, the edge map of the generated
masks equal on >= 99.9 %, plus predicted IoU, stability, point and box rows. Configs with crop
layers are compared as sets (masks paired by IoU), the others in generator order. The edge map
painted from the golden masks themselves must equal the golden edge map exactly.
"""

import numpy as np

from icmh_jax.golden.report import GoldenReport
from icmh_jax.sam import amg, edges

AREA_RTOL = 1e-3
PIXEL_AGREEMENT = 0.999


def _unpack(packed: np.ndarray, width: int) -> np.ndarray:
  return np.unpackbits(packed, axis=-1)[..., :width].astype(bool)


def golden_records(z, name: str, width: int) -> dict[str, np.ndarray]:
  """The golden generator output of one config as arrays (masks bool [N, H, W])."""
  g = lambda k: np.asarray(z[f"amg/{name}/{k}"])
  return dict(masks=_unpack(g("masks_packed"), width), areas=g("areas"),
              bbox=g("bbox_xywh").astype(np.float64), predicted_iou=g("predicted_iou"),
              stability_score=g("stability_score"), point_coords=g("point_coords"),
              crop_box=g("crop_box_xywh").astype(np.float64),
              edge_map=_unpack(g("edge_map_packed"), width))


def records_as_arrays(records: list[dict], shape: tuple[int, int]) -> dict[str, np.ndarray]:
  """Generator records (binary_mask mode) -> the arrays `golden_records` returns."""
  h, w = shape
  masks = np.stack([r["segmentation"] for r in records]) if records else np.zeros((0, h, w), bool)
  col = lambda k, dt: np.asarray([r[k] for r in records], dt)
  return dict(masks=masks, areas=col("area", np.int64), bbox=col("bbox", np.float64).reshape(-1, 4),
              predicted_iou=col("predicted_iou", np.float32),
              stability_score=col("stability_score", np.float32),
              point_coords=np.asarray([r["point_coords"][0] for r in records],
                                      np.float64).reshape(-1, 2),
              crop_box=col("crop_box", np.float64).reshape(-1, 4),
              edge_map=edges.edge_map(masks, shape))


def _pair_by_iou(got: np.ndarray, want: np.ndarray) -> list[int]:
  """For each wanted mask, the index of the got mask with the highest IoU (greedy, unique)."""
  g = got.reshape(len(got), -1).astype(np.float32)
  w = want.reshape(len(want), -1).astype(np.float32)
  inter = w @ g.T
  union = w.sum(1)[:, None] + g.sum(1)[None, :] - inter
  iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
  pairs, free = [], set(range(len(got)))
  for i in np.argsort(-iou.max(axis=1, initial=0), kind="stable"):
    j = max(free, key=lambda j: iou[i, j]) if free else None
    pairs.append((i, j))
    if j is not None:
      free.discard(j)
  return [j for _, j in sorted(pairs)]


def compare_amg(report: GoldenReport, name: str, got: dict, want: dict, as_set: bool) -> None:
  """Adds one config's rows to the report (see the module docstring)."""
  pre = f"amg/{name}/"
  n_got, n_want = len(got["masks"]), len(want["masks"])
  report.check(pre + "num_masks", n_got == n_want, f"{n_got} masks, golden {n_want}")
  if as_set:
    order = _pair_by_iou(got["masks"], want["masks"]) if n_got else []
  else:
    order = list(range(min(n_got, n_want)))
  idx = np.array([j for j in order if j is not None], np.int64)
  if len(idx) != n_want or n_want == 0:
    report.check(pre + "masks", n_got == n_want == 0, f"{len(idx)} of {n_want} masks paired")
  else:
    g = {k: v[idx] for k, v in got.items() if k != "edge_map"}
    rel = np.abs(g["areas"] - want["areas"]) / np.maximum(want["areas"], 1)
    report.check(pre + "areas", bool(np.all(rel <= AREA_RTOL)),
                 f"max relative area difference {rel.max():.2e} (allowed {AREA_RTOL})")
    agree = (g["masks"] == want["masks"]).reshape(n_want, -1).mean(axis=1)
    report.check(pre + "masks", bool(np.all(agree >= PIXEL_AGREEMENT)),
                 f"worst mask agrees on {100 * agree.min():.4f} % of pixels "
                 f"(needs {100 * PIXEL_AGREEMENT} %)")
    report.close(pre + "predicted_iou", g["predicted_iou"], want["predicted_iou"], 1e-4)
    report.close(pre + "stability_score", g["stability_score"], want["stability_score"], 1e-3)
    report.close(pre + "point_coords", g["point_coords"], want["point_coords"], 1e-6)
    report.close(pre + "bbox_xywh", g["bbox"], want["bbox"], 1e-2)
    report.exact(pre + "crop_box_xywh", g["crop_box"], want["crop_box"])
  agree = float(np.mean(got["edge_map"] == want["edge_map"]))
  report.check(pre + "edge_map", agree >= PIXEL_AGREEMENT,
               f"agrees on {100 * agree:.4f} % of pixels (needs {100 * PIXEL_AGREEMENT} %)")


def check_amg(z, meta: dict, report: GoldenReport, predictor) -> None:
  """Runs every AMG config of the golden JSON with `predictor` and adds the rows to `report`.

  Args:
    z: mapping of the golden npz arrays.
    meta: the golden JSON.
    report: the GoldenReport to extend.
    predictor: a `SamPredictor` of the golden model (set_image / predict_points).
  """
  image = np.asarray(z["image"])
  shape = image.shape[:2]
  for cfg in meta["amg"]["configs"]:
    name = cfg["name"]
    want = golden_records(z, name, shape[1])
    report.exact(f"amg/{name}/edge_map_from_golden_masks",
                 edges.edge_map(want["masks"], shape), want["edge_map"])
    kwargs = {k: v for k, v in cfg["config"].items() if k != "point_grids"}
    generator = amg.AutomaticMaskGenerator(predictor, **kwargs)
    got = records_as_arrays(generator.generate(image), shape)
    compare_amg(report, name, got, want, as_set=cfg["config"]["crop_n_layers"] > 0)
