"""Segment Anything v1 in Flax (NHWC) and the SA-ICM edge maps built on it.

Model: `model.Sam`, `model.SamConfig`, `model.get_config("vit_b" | "vit_l" | "vit_h")`,
`model.config_from_golden(meta)`; parts in `image_encoder`, `prompt_encoder`, `transformer`,
`mask_decoder`. Inference: `predictor.SamPredictor(params, config)` (`set_image`, `predict`,
batched `predict_points`). Weights: `icmh_jax.convert.sam` (official state_dict <-> params,
`convert_checkpoint` / `load_converted` for params directories; `icmh convert sam`).
Submodules are not imported here, so numpy-only helpers stay cheap to import.
"""
