"""train_compare: the gap arithmetic and argument checks (default suite), and a short side-by-side
run against the real PyTorch reference (slow).

The slow test needs torch and a LIC_TCM checkout named by `$ICMH_TORCH_REFERENCE` (the test reads
nothing outside the repository unless told); it is skipped where either is absent (CI).
"""

import json
import math
import os
import pathlib

import numpy as np
import pytest

from icmh_jax.benchmarks import harness, torch_reference, train_compare
from icmh_jax.errors import ConfigError


def _curves(loss, bpp, mse):
  return {"loss": loss, "bpp": bpp, "mse": mse}


def test_gap_is_the_relative_difference_of_the_last_window_means():
  # Only the last 2 steps count: the first step's values (9, 100, 50) are outside the window.
  ours = _curves([9.0, 2.0, 4.0], [100.0, 1.0, 1.1], [50.0, 0.99, 0.99])
  reference = _curves([0.0, 3.0, 3.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0])
  g = train_compare.gap(ours, reference, window=2)
  assert g["loss"]["ours"] == 3.0 and g["loss"]["reference"] == 3.0
  assert g["loss"]["relative"] == 0.0 and g["loss"]["within"]
  assert g["bpp"]["relative"] == pytest.approx(0.05) and not g["bpp"]["within"]  # 1.05 / 1 - 1
  assert g["mse"]["relative"] == pytest.approx(-0.01) and g["mse"]["within"]


@pytest.mark.parametrize("window", [0, 4])
def test_gap_window_outside_the_steps_run_raises(window):
  three = _curves([1.0] * 3, [1.0] * 3, [1.0] * 3)
  with pytest.raises(ConfigError, match=f"gap window {window} must be between 1 and"):
    train_compare.gap(three, three, window)


def test_agreement_counts_the_steps_before_the_first_loss_gap_above_the_tolerance():
  reference = _curves([10.0, 10.0, 10.0, 10.0], [1.0] * 4, [1.0] * 4)
  ours = _curves([10.0, 10.005, 10.02, 10.0], [1.0] * 4, [1.0] * 4)  # 0, 5e-4, 2e-3, 0
  assert train_compare.agreement(ours, reference) == 2  # the step after 2 is 0.2 % apart
  assert train_compare.agreement(ours, reference, tol=0.01) == 4
  assert train_compare.agreement(reference, reference) == 4
  nan = _curves([float("nan"), 10.0, 10.0, 10.0], [1.0] * 4, [1.0] * 4)
  assert train_compare.agreement(nan, reference) == 0  # a NaN never agrees


def test_moving_average_averages_what_exists_at_the_start():
  np.testing.assert_allclose(train_compare.moving_average([2.0, 4.0, 6.0, 8.0], 2),
                             [2.0, 3.0, 5.0, 7.0])


def test_a_result_is_reused_only_for_the_same_work(tmp_path):
  path = tmp_path / "train_compare.json"
  settings = dict(steps=3, N=32, batch=1, crop=256, seed=0, lam=0.013, noise="shared",
                  window=3, torch_threads=None)
  assert train_compare._reusable(str(path), settings) == {}  # nothing written yet
  sides = {"ours": {"loss": [1.0]}, "reference": {"loss": [2.0]}, "machine": {"cpu": "x"}}
  path.write_text(json.dumps(dict(config=settings, gap={}, **sides)))
  # Window and threads change only the gap and the timing, not the curves: reused.
  assert train_compare._reusable(str(path), {**settings, "window": 2, "torch_threads": 1}) == sides
  for k, other in (("steps", 4), ("N", 64), ("batch", 2), ("crop", 384), ("seed", 1),
                   ("lam", 0.0483), ("noise", "own")):
    assert train_compare._reusable(str(path), {**settings, k: other}) == {}, k
  path.write_text("{truncated")
  assert train_compare._reusable(str(path), settings) == {}


def test_a_stopped_run_keeps_the_sides_it_trained(tmp_path, monkeypatch):
  """Each side is written as soon as it is trained: a run that dies in the reference's side keeps
  ours, and the rerun trains only what is missing."""
  steps = 3
  fake = lambda v: {**_curves([v] * steps, [0.5] * steps, [0.01] * steps), "step_s": [1.0] * steps,
                    "digests": ["d"] * steps, "wall_s": 3.0}
  trained = []
  monkeypatch.setattr(torch_reference, "load_reference", lambda directory: None)
  monkeypatch.setattr(train_compare, "train_ours",
                      lambda *a, **k: trained.append("ours") or fake(10.0))

  def reference_dies(name, **kwargs):
    raise KeyboardInterrupt

  monkeypatch.setattr(torch_reference, "isolated", reference_dies)
  with pytest.raises(KeyboardInterrupt):
    train_compare.compare("ref", tmp_path, steps=steps, window=steps, noise="own", control=True)
  doc = json.loads((tmp_path / "train_compare.json").read_text())
  assert doc["ours"]["loss"] == [10.0] * steps and "reference" not in doc and "gap" not in doc

  runs = []
  monkeypatch.setattr(torch_reference, "isolated",
                      lambda name, **kwargs: runs.append(kwargs["seed"]) or fake(10.1 + len(runs)))
  result = train_compare.compare("ref", tmp_path, steps=steps, window=steps, noise="own",
                                 control=True)
  assert trained == ["ours"] and runs == [0, 1]  # ours reused; reference, then control (seed 1)
  assert result["gap"]["loss"]["relative"] == pytest.approx(10.0 / 11.1 - 1)
  assert json.loads((tmp_path / "train_compare.json").read_text())["gap"] == result["gap"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(steps=50), "--window between 1 and --steps"),  # the default window is 100 steps
    (dict(steps=3, window=3, crop=128), "crop 128"),
    (dict(steps=3, window=3, crop=320), "crop 320"),
    (dict(steps=3, window=3, noise="same"), "--noise must be one of shared, own"),
])
def test_bad_arguments_are_refused_before_training(tmp_path, kwargs, message):
  with pytest.raises(ConfigError, match=message):
    train_compare.compare(tmp_path, tmp_path / "out", **kwargs)
  assert not (tmp_path / "out").exists()


def test_directory_that_is_not_a_checkout_exits_1(tmp_path, capsys):
  argv = ["--torch-reference", str(tmp_path), "--out", str(tmp_path / "out"), "--steps", "3",
          "--window", "3"]
  assert train_compare.main(argv) == 1
  assert "not a LIC_TCM checkout" in capsys.readouterr().err


def _reference_dir() -> pathlib.Path:
  given = os.environ.get("ICMH_TORCH_REFERENCE")
  if not given:
    pytest.skip("set ICMH_TORCH_REFERENCE to a LIC_TCM checkout to run it")
  path = pathlib.Path(given)
  if not (path / "models" / "tcm.py").is_file():
    pytest.skip(f"no LIC_TCM checkout at {path} (set ICMH_TORCH_REFERENCE)")
  return path


def _reference_bpp_draws(directory, config, batch_u8, draws: int) -> np.ndarray:
  """The reference's train-mode bpp of `batch_u8` under `draws` noise draws (seeds 0..draws-1),
  from the same initial weights as the run (`fresh_params` is deterministic in the seed)."""
  import jax
  import torch
  from icmh_jax.convert import tcm as convert_tcm
  from icmh_jax.models import registry
  from icmh_jax.train import loop
  params = loop.fresh_params(registry.get_system(config.system, config.model), config)
  m = config.model
  net, _ = torch_reference._build(torch_reference.load_reference(directory), m.N_machine, m.M,
                                  m.num_slices_m,
                                  convert_tcm.to_reference(jax.device_get(params["base"])), 0)
  x = torch_reference._to_batch(batch_u8)
  out = []
  with torch.no_grad():
    for seed in range(draws):
      torch.manual_seed(seed)
      out.append(float(torch_reference._rd_loss(net.train()(x), x, config.loss.lam)[1]))
  return np.asarray(out)


@pytest.mark.slow
def test_both_sides_start_from_the_same_weights_on_the_same_batches(tmp_path):
  pytest.importorskip("torch")
  directory = _reference_dir()
  steps, batch, crop = 3, 1, 256  # the smallest run the reference trains on
  train_compare.compare(directory, tmp_path, steps=steps, N=32, batch=batch, crop=crop,
                        window=steps, torch_threads=1, noise="own")
  doc = json.loads((tmp_path / "train_compare.json").read_text())
  assert (tmp_path / "train_compare.png").stat().st_size > 10_000
  ours, ref = doc["ours"], doc["reference"]
  # (a) Each side hashed what it was fed (the reference redrew the batches in its own process).
  batches = list(train_compare.Batches(steps, batch, crop, seed=0))
  assert ours["digests"] == ref["digests"] == [harness.digest(b) for b in batches]
  assert doc["same_batches"] and len(set(ours["digests"])) == steps
  # (c) Every curve has a finite value per step.
  for side in (ours, ref):
    for k in (*train_compare.METRICS, "step_s"):
      assert len(side[k]) == steps and all(math.isfinite(v) for v in side[k])
  # (b) Step 1 is the initial weights on batch 0. x_hat comes from rounded latents in training
  # too (noise enters only the rates), so its mse is the same computation on both sides: float32
  # tolerance (seen: 1e-7 relative).
  assert ours["mse"][0] == pytest.approx(ref["mse"][0], rel=1e-4)
  # The rates differ by the independent U(-1/2, 1/2) draws only: the difference of two draws has
  # standard deviation sqrt(2) sigma, sigma estimated from 8 draws on the reference (about 0.3 %
  # of the bpp at batch 1); 5 sqrt(2) sigma-hat is exceeded with probability 2e-3 (t, 7 dof).
  config = train_compare.make_config(32, batch, crop, steps, doc["config"]["lam"], seed=0)
  draws = _reference_bpp_draws(directory, config, batches[0], draws=8)
  sigma = float(np.std(draws, ddof=1))
  assert 0 < sigma < 0.01 * np.mean(draws)  # the bound below is tight enough to mean something
  assert abs(ours["bpp"][0] - ref["bpp"][0]) <= 5 * math.sqrt(2) * sigma
  assert abs(ours["bpp"][0] - np.mean(draws)) <= 5 * sigma * math.sqrt(1 + 1 / 8)


@pytest.mark.slow
def test_shared_noise_makes_both_sides_one_computation(tmp_path):
  """Fed the noise our step drew, the reference's first step is ours to float32 tolerance in
  every metric (the rates too, not only the mse); its control, with noise of its own, has the
  same mse but another rate; the noise files are gone afterwards."""
  pytest.importorskip("torch")
  directory = _reference_dir()
  steps, batch, crop = 3, 2, 256
  result = train_compare.compare(directory, tmp_path, steps=steps, N=32, batch=batch, crop=crop,
                                 window=steps, torch_threads=1, control=True)
  ours, ref, control = result["ours"], result["reference"], result["control"]
  assert result["config"]["noise"] == "shared" and result["same_batches"]
  for k in train_compare.METRICS:
    assert ours[k][0] == pytest.approx(ref[k][0], rel=1e-4), k
    assert result["first_step"][k]["relative"] == pytest.approx(ours[k][0] / ref[k][0] - 1)
  assert control["mse"][0] == pytest.approx(ref["mse"][0], rel=1e-4)
  assert control["bpp"][0] != pytest.approx(ref["bpp"][0], rel=1e-4)
  assert sorted(os.listdir(tmp_path)) == ["train_compare.json", "train_compare.png"]
  assert "training noise: shared" in train_compare.summary(result)
