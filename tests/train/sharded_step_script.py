"""Run by test_step.py with 4 forced CPU devices: 3 steps on a 1-device and a 4-device mesh."""

import json
import pathlib
import sys

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_step import toy_config, _state  # noqa: E402
from toy_system import ToySystem  # noqa: E402

from icmh_jax.train import step  # noqa: E402


def run(devices):
  system, config = ToySystem(), toy_config(mask="edges")
  state = _state(system, config)
  mesh = step.make_mesh(devices)
  train = step.make_train_step(mesh, system=system, config=config)
  rng = np.random.default_rng(0)
  losses = []
  for _ in range(3):
    batch = {"image": rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8),
             "edges": rng.integers(0, 2, (4, 16, 16), dtype=np.uint8)}
    batch = jax.device_put(batch, step.batch_sharding(mesh))
    state, metrics = train(state, batch, jax.random.key(7))
    losses.append(float(metrics["loss"]))
  return losses, jax.device_get(state.params)


losses_1, p1 = run(jax.devices()[:1])
losses_4, p4 = run(jax.devices())
p0 = _state(ToySystem(), toy_config()).params
rel = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12))
          for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p4)))
change = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p0)))
print(json.dumps(dict(devices=len(jax.devices()), losses_1=losses_1, losses_4=losses_4,
                      max_param_rel_diff=rel, param_change=change)))
