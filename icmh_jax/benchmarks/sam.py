"""`icmh bench sam`: images/s of SAM's automatic mask generator (encoder + point grid + filters).

Random weights of the chosen size (`vit_b` is the headline: ViT-B shapes, the full-size mask
decoder; `tiny` is the golden set's 2-block encoder with the same decoder), on a real photo
(skimage's coffee, resized). The first `generate` (compiles the encoder, the decoder and the
postprocessing for the image size) is reported apart; the figure is the median of the timed runs.
Random weights make few masks pass the default thresholds, so the filters default to off (every
candidate goes through NMS and mask bookkeeping, the heaviest case).
"""

from icmh_jax.benchmarks import harness

HELP = "SAM automatic mask generator images/s (random weights; --model vit_b|tiny)"
TINY = dict(encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2,
            encoder_global_attn_indexes=(1,))


def add_arguments(p):
  p.add_argument("--model", choices=("vit_b", "vit_l", "vit_h", "tiny"), default="vit_b")
  p.add_argument("--points-per-side", type=int, default=8)
  p.add_argument("--points-per-batch", type=int, default=64)
  p.add_argument("--crop-n-layers", type=int, default=0)
  p.add_argument("--pred-iou-thresh", type=float, default=0.0, help="0 = filter off")
  p.add_argument("--stability-score-thresh", type=float, default=0.0, help="0 = filter off")
  p.add_argument("--image-size", default="480x640", help="HxW of the photo (COCO-like default)")


def _photo(size: str):
  import numpy as np
  import skimage.data
  from PIL import Image
  h, w = (int(v) for v in size.lower().split("x"))
  return np.asarray(Image.fromarray(skimage.data.coffee()).resize((w, h), Image.BILINEAR))


def run(args) -> dict:
  import dataclasses

  import jax
  from icmh_jax.sam import amg, edges
  from icmh_jax.sam.model import SamConfig, get_config, init_params
  from icmh_jax.sam.predictor import SamPredictor
  config = (SamConfig(name="tiny", **TINY) if args.model == "tiny" else get_config(args.model))
  params = init_params(config, jax.random.PRNGKey(0))
  predictor = SamPredictor(params, config, points_per_batch=args.points_per_batch)
  generator = amg.AutomaticMaskGenerator(
      predictor, points_per_side=args.points_per_side, points_per_batch=args.points_per_batch,
      pred_iou_thresh=args.pred_iou_thresh, stability_score_thresh=args.stability_score_thresh,
      crop_n_layers=args.crop_n_layers)
  image = _photo(args.image_size)
  masks = []
  timing = harness.measure("amg_generate", lambda: masks.append(generator.generate(image)),
                           repeats=args.repeats, warmup=1)
  encode = harness.measure("set_image", lambda: harness.block(predictor.set_image(image)
                                                              or predictor.features),
                           repeats=args.repeats, warmup=1)
  records = masks[-1]
  n_edges = (int(edges.edge_map(records, image.shape[:2]).sum())
             if len(records) <= edges.MAX_MASKS else None)
  return dict(model=config.name, image_hw=list(image.shape[:2]),
              points_per_side=args.points_per_side, crop_n_layers=args.crop_n_layers,
              images_per_s=1.0 / timing.median_s, generate=timing.as_dict(),
              set_image=encode.as_dict(), num_masks=len(records), edge_pixels=n_edges,
              encoder_params=sum(x.size for x in jax.tree.leaves(params["image_encoder"])),
              config=dataclasses.asdict(config))
