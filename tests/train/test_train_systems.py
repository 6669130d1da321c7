"""Tiny real systems (registry) trained on the bundled photos: SA-ICM, then FR-/PR-ICMH over it."""

import importlib

import numpy as np
import pytest

from icmh_jax import params_io
from icmh_jax.train import loop, metrics_writer

STEPS = 16


def _config(family, data_dir, base="", compress_images=0):
  c = importlib.import_module(f"configs.{family}").get_config("tiny")
  c.data.dir, c.data.crop = data_dir, 64
  c.optim.lr = 1e-3
  c.schedule.total_steps, c.schedule.milestones = STEPS, (STEPS,)
  c.log_every, c.ckpt_every, c.eval_every = 1, STEPS, STEPS
  c.eval.num_batches, c.eval.compress_images = 1, compress_images
  c.base_checkpoint = base
  return c


def _train(family, workdir, data_dir, base="", compress_images=0):
  loop.train_and_evaluate(_config(family, data_dir, base, compress_images), str(workdir))
  losses = [r["loss"] for r in metrics_writer.read_scalars(str(workdir)) if "loss" in r]
  assert len(losses) == STEPS
  assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses
  return losses


@pytest.fixture(scope="module")
def sa_icm_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("systems")
  _train("sa_icm", root / "sa_icm", str(root / "data"), compress_images=1)
  return root


@pytest.mark.slow
def test_tiny_sa_icm_lowers_its_loss_and_saves_a_loadable_base(sa_icm_run):
  params, meta = params_io.load_params(sa_icm_run / "sa_icm")
  assert meta["system"] == "sa_icm" and meta["config"]["loss"]["mask"] == "edges"
  assert set(params) == {"base"}
  # The final evaluation also wrote a real .icmh file. Its rate cannot be far below the estimate;
  # it may be far above it here: the 64² crop is coded padded to pad_multiple = 128 (4x the pixels).
  val = [r for r in metrics_writer.read_scalars(str(sa_icm_run / "sa_icm")) if "val/loss" in r][-1]
  assert 0.5 * val["val/bpp/machine"] < val["val/bpp_file"] < 6.0 * val["val/bpp/machine"] + 1.0


@pytest.mark.slow
@pytest.mark.parametrize("family", ["fr_icmh", "pr_icmh"])
def test_tiny_human_layer_lowers_its_loss_over_the_frozen_base(sa_icm_run, family):
  _train(family, sa_icm_run / family, str(sa_icm_run / "data"), base=str(sa_icm_run / "sa_icm"))
  base, _ = params_io.load_params(sa_icm_run / "sa_icm")
  trained, meta = params_io.load_params(sa_icm_run / family)
  assert meta["system"] == family
  for a, b in zip(_leaves(base["base"]), _leaves(trained["base"])):
    np.testing.assert_array_equal(a, b)  # the base stayed frozen


def _leaves(tree):
  import jax
  return jax.tree.leaves(tree)
