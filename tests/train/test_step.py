"""The sharded train step: analytic loss terms, learning, and 1 vs 4 devices giving one update."""

import json
import math
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from icmh_jax.models.system import SystemOutput
from icmh_jax.train import losses, optim, step

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def toy_config(mask="none", lr=1e-3):
  c = ml_collections.ConfigDict(dict(
      loss=dict(lam=0.01, mask=mask), optim=dict(lr=lr, aux_lr=1e-3, clip_norm=1.0),
      schedule=dict(milestones=(1000,), gamma=0.1), compute_dtype="float32"))
  return c


def test_rate_distortion_matches_hand_arithmetic():
  x = jnp.full((2, 4, 4, 3), 0.5)
  x_hat_m = x + 0.1  # mse 0.01 on every pixel
  lik = {"y": jnp.full((2, 1, 1, 8), 0.5), "z": jnp.full((2, 1, 1, 4), 0.25)}
  out = SystemOutput(x_hat=x, x_hat_m=x_hat_m, likelihoods={"machine": lik, "human": {}})
  m = jnp.zeros((2, 4, 4, 1)).at[:, :2].set(1.0)  # half of the pixels count
  loss, metrics = losses.rate_distortion(out, x, m, trained_layer="machine", lam=0.05)
  bits = 2 * 8 * 1 + 2 * 4 * 2
  assert math.isclose(float(metrics["bpp/machine"]), bits / 32, rel_tol=1e-6)
  assert math.isclose(float(metrics["mse"]), 0.01 / 2, rel_tol=1e-5)
  assert math.isclose(float(loss), bits / 32 + 0.05 * 255**2 * 0.005, rel_tol=1e-5)
  assert math.isclose(float(metrics["psnr"]), 20.0, rel_tol=1e-5)
  assert "bpp/human" not in metrics
  assert math.isclose(float(metrics["psnr_masked"]), 20.0, rel_tol=1e-5)


def test_psnr_masked_sees_only_the_masked_pixels():
  x = jnp.full((1, 4, 4, 3), 0.5)
  m = jnp.zeros((1, 4, 4, 1)).at[:, :2].set(1.0)
  x_hat = x.at[:, :2].add(0.1).at[:, 2:].add(0.3)  # mse 0.01 on the mask, 0.09 off it
  lik = {"y": jnp.full((1, 1, 1, 1), 0.5)}
  out = SystemOutput(x_hat=x_hat, x_hat_m=x_hat, likelihoods={"machine": lik, "human": {}})
  _, metrics = losses.rate_distortion(out, x, m, trained_layer="machine", lam=0.05)
  assert math.isclose(float(metrics["psnr_masked"]), 20.0, rel_tol=1e-5)
  assert math.isclose(float(metrics["psnr"]), -10 * math.log10(0.05), rel_tol=1e-5)


def test_human_layer_loss_uses_x_hat_and_human_rate():
  x = jnp.zeros((1, 2, 2, 3))
  lik_m = {"y": jnp.full((1, 1, 1, 1), 0.5)}
  lik_h = {"y": jnp.full((1, 1, 1, 4), 0.5)}
  out = SystemOutput(x_hat=x + 0.2, x_hat_m=x + 0.9, likelihoods={"machine": lik_m, "human": lik_h})
  loss, metrics = losses.rate_distortion(out, x, jnp.ones((1, 2, 2, 1)), trained_layer="human", lam=1.0)
  assert math.isclose(float(loss), 4 / 4 + 255**2 * 0.04, rel_tol=1e-5)
  assert math.isclose(float(metrics["bpp/machine"]), 0.25, rel_tol=1e-6)


def _state(system, config, shape=(16, 16, 3)):
  params = system.init(jax.random.key(0), shape)
  return optim.create_train_state(params, system.trainable_key())


@pytest.mark.slow  # moved out of the default suite (its 5-minute budget)
def test_loss_decreases_and_quantiles_follow_only_the_aux_loss():
  sys.path.insert(0, str(HERE))
  from toy_system import ToySystem
  system, config = ToySystem(), toy_config(lr=1e-2)
  state = _state(system, config)
  q0 = np.array(state.params["base"]["entropy_bottleneck"]["quantiles"])
  train = step.make_train_step(step.make_mesh(jax.devices()[:1]), system=system, config=config)
  # Smooth images (a ramp and its mirror): learnable by a 4x4-stride codec.
  ramp = np.linspace(0, 255, 16, dtype=np.float32)[None, :, None] * np.ones((16, 1, 3))
  x = np.stack([ramp, ramp[:, ::-1]]).astype(np.uint8)
  losses_seen, auxes = [], []
  for _ in range(30):
    state, metrics = train(state, {"image": x}, jax.random.key(1))
    losses_seen.append(float(metrics["loss"]))
    auxes.append(float(metrics["aux"]))
  assert int(state.step) == 30
  assert losses_seen[-1] < 0.7 * losses_seen[0]
  # Adam moves each quantile by ~aux_lr per step towards its target (-5, 0, 5).
  q = np.array(state.params["base"]["entropy_bottleneck"]["quantiles"])
  assert np.all(q[:, 0, 0] < q0[:, 0, 0] - 0.02) and np.all(q[:, 0, 2] > q0[:, 0, 2] + 0.02)
  assert auxes[-1] < auxes[0]


@pytest.mark.slow  # a subprocess compiling two meshes, 18 s
def test_one_and_four_devices_give_same_update():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, str(HERE / "sharded_step_script.py")], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  res = json.loads(out.stdout.strip().splitlines()[-1])
  assert res["devices"] == 4
  for a, b in zip(res["losses_1"], res["losses_4"]):
    assert math.isclose(a, b, rel_tol=1e-5), (res["losses_1"], res["losses_4"])
  assert res["max_param_rel_diff"] <= 1e-5
  assert res["param_change"] > 0  # the update did move the parameters


@pytest.mark.slow  # moved out of the default suite (its 5-minute budget)
def test_bfloat16_compute_keeps_float32_params_and_close_loss():
  sys.path.insert(0, str(HERE))
  from toy_system import ToySystem
  system = ToySystem()
  x = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
  results = {}
  for dtype in ("float32", "bfloat16"):
    config = toy_config()
    config.compute_dtype = dtype
    train = step.make_train_step(step.make_mesh(jax.devices()[:1]), system=system, config=config)
    state, metrics = train(_state(system, config), {"image": x}, jax.random.key(1))
    results[dtype] = (float(metrics["loss"]), state)
  (l32, _), (l16, s16) = results["float32"], results["bfloat16"]
  assert l16 != l32 and math.isclose(l16, l32, rel_tol=3e-2)
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(s16.params))


def test_runs_differing_in_lam_and_schedule_share_one_traced_step(monkeypatch):
  """λ, learning rates and milestones are arguments: a second run (a study's next λ, its
  fine-tuning schedule) reuses the first one's traced and compiled step, with its own values."""
  sys.path.insert(0, str(HERE))
  from toy_system import ToySystem
  mesh = step.make_mesh(jax.devices()[:1])
  x = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
  first, second = toy_config(lr=1e-3), toy_config(lr=1e-2)
  second.loss.lam, second.schedule.milestones, second.optim.aux_lr = 0.05, (0, 5, 9), 1e-2
  compiles, releases = [], []

  def count(event, duration, **_):
    if event == "/jax/core/compile/backend_compile_duration":
      compiles.append(duration)
  monkeypatch.setattr(step.malloc_options, "release", lambda: releases.append(1))
  before = step._jitted_train_step.cache_info()
  seen = []
  jax.monitoring.register_event_duration_secs_listener(count)
  try:
    for config in (first, second):
      # A fresh, equal system per run, as a study builds one per run.
      train = step.make_train_step(mesh, system=ToySystem(), config=config)
      state = _state(ToySystem(), config)
      compiles.clear()
      for _ in range(2):
        state, metrics = train(state, {"image": x}, jax.random.key(1))
      if not seen:
        first_run_compiles = len(compiles)
      seen.append({k: float(metrics[k]) for k in ("loss", "lr")})
  finally:
    jax.monitoring.unregister_event_duration_listener(count)
  after = step._jitted_train_step.cache_info()
  assert after.hits - before.hits >= 1 and after.misses - before.misses <= 1
  # The second run compiles nothing: its traced and compiled steps are the first run's. The first
  # compiles at most two (earlier tests in this process may have): one for the state built here
  # on the default device, one for the step's own replicated output.
  assert first_run_compiles <= 2 and compiles == []
  assert len(releases) == 2  # the heap given back once per run, before its first step
  assert math.isclose(seen[0]["lr"], 1e-3, rel_tol=1e-6)
  assert math.isclose(seen[1]["lr"], 1e-2 * 0.1, rel_tol=1e-6)  # milestone 0 already passed
  assert seen[0]["loss"] != seen[1]["loss"]  # λ 0.01 vs 0.05 on the same batch and weights


def test_training_noise_redrawn_outside_the_step_is_the_noise_the_step_added():
  """`step.training_noise` is the step's own draw: the loss of the weights before the update,
  recomputed with the noise redrawn for that step, is the step's loss (what lets the side by
  side feed our noise to the PyTorch reference); another step's noise gives another loss."""
  sys.path.insert(0, str(HERE))
  from toy_system import ToySystem
  system, config = ToySystem(), toy_config()
  mesh = step.make_mesh(jax.devices()[:1])
  x = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
  state, key = _state(system, config), jax.random.key(7)
  params = _state(system, config).params  # the step donates `state`
  train = step.make_train_step(mesh, system=system, config=config)
  _, metrics = train(state, {"image": x}, key)

  def loss_with_noise_of(at_step):
    noise = step.training_noise(system.noise_shapes(x.shape[1:]), key, at_step, jnp.arange(2))
    assert noise["y"].shape == (2, 4, 4, 8) and noise["z"].shape == (2, 2, 2, 8)
    assert float(jnp.min(noise["y"])) >= -0.5 and float(jnp.max(noise["y"])) <= 0.5
    images = jnp.asarray(x, jnp.float32) / 255.0
    out = system.apply(params, images, train=True, noise=noise)
    loss, _ = losses.rate_distortion(out, images, losses.distortion_mask({}, "none", images),
                                     trained_layer="machine", lam=config.loss.lam)
    return float(loss)

  assert math.isclose(loss_with_noise_of(0), float(metrics["loss"]), rel_tol=1e-5)
  assert not math.isclose(loss_with_noise_of(1), float(metrics["loss"]), rel_tol=1e-3)
