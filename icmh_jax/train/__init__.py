"""Training: `loop.train_and_evaluate(config, workdir)` and its parts.

`losses` (the one rate-distortion loss), `optim` (TrainState, main + auxiliary optimisers, LR
schedule), `step` (sharded jit(shard_map) train / eval steps), `checkpoint` (params directories and
the Orbax CheckpointManager), `metrics_writer` (JSONL + TensorBoard), `loop`.
"""
