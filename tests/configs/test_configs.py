"""Config files: knobs parse, unknown knobs fail naming the known ones, tiny shrinks consistently."""

import importlib

import pytest

from icmh_jax import config_files
from icmh_jax.errors import ConfigError
from icmh_jax.models import config as model_config

FAMILIES = ("tcm", "sa_icm", "icmh_ff", "fr_icmh", "pr_icmh")


def _get(family, arg=""):
  return importlib.import_module(f"configs.{family}").get_config(arg)


def test_knobs_reach_model_and_loss():
  c = _get("fr_icmh", "na=4,lam=0.02")
  assert c.model.num_slices_a == 4 and c.loss.lam == 0.02 and c.system == "fr_icmh"
  s = _get("sa_icm")
  assert s.loss.lam == 0.05 and s.loss.mask == "edges"


def test_unknown_knob_lists_the_known_ones():
  with pytest.raises(ConfigError, match=r"unknown config knob 'nb'; known: lam, na, tiny"):
    _get("pr_icmh", "nb=4")


@pytest.mark.parametrize("arg,match", [("na=6", "na=6 is not allowed"),
                                       ("lam=-0.01", "lam=-0.01 must be a positive number"),
                                       ("na=four", "not a valid int")])
def test_bad_knob_values_raise_config_error(arg, match):
  with pytest.raises(ConfigError, match=match):
    _get("icmh_ff", arg)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_config_resolves_in_the_registry_full_and_tiny(family):
  for arg in ("", "tiny"):
    c = _get(family, arg)
    model = model_config.resolve_config(c.model)  # raises on unknown fields or M != slices * width
    assert model["M"] == model["num_slices_m"] * model["slice_width"]
    assert set(c.optim) == {"lr", "aux_lr", "clip_norm"}
  tiny = _get(family, "tiny")
  assert tiny.data.crop == 128 and tiny.schedule.total_steps == 300
  assert max(tiny.schedule.milestones) < tiny.schedule.total_steps


def test_tiny_human_layer_uses_the_tiny_base():
  assert _get("fr_icmh", "tiny").base_checkpoint == _get("fr_icmh").base_checkpoint + "_tiny"
  assert _get("sa_icm", "tiny").base_checkpoint == ""


def test_bool_knob_accepts_bare_name_and_false():
  assert config_files.parse_arg("tiny", tiny=False).tiny is True
  assert config_files.parse_arg("tiny=false", tiny=True).tiny is False


def test_loader_applies_typed_overrides_and_locks_the_config():
  c = config_files.load("configs/fr_icmh.py:na=4,tiny",
                        ["optim.lr=5e-5", "schedule.milestones=(10, 20)", "data.dir=/tmp/d"])
  assert (c.optim.lr, c.schedule.milestones, c.data.dir) == (5e-5, (10, 20), "/tmp/d")
  assert c.model.num_slices_a == 4 and c.model.N == 32
  with pytest.raises(AttributeError):
    c.optim.lrr = 1.0  # locked: a misspelt field fails later too


@pytest.mark.parametrize("override,match", [
    ("optim.lrr=1e-5", r"unknown config field 'optim.lrr'; known at that level: aux_lr, clip_norm, lr"),
    ("model.N_m=64", r"model.N_m was renamed to model.N_machine: --config.model.N_machine=..."),
    ("loss.lam=0", r"loss.lam=0.0 must be a positive number"),
    ("optim.lr=fast", r"--config.optim.lr='fast'"),
    ("optim.lr", r"needs a value")])
def test_loader_refuses_bad_overrides_with_one_clear_line(override, match):
  with pytest.raises(ConfigError, match=match):
    config_files.load("configs/tcm.py", [override])


def test_lam_off_the_paper_grid_is_accepted_by_knob_and_override_alike():
  assert config_files.load("configs/icmh_ff.py:lam=0.04").loss.lam == 0.04
  assert config_files.load("configs/icmh_ff.py", ["loss.lam=0.004"]).loss.lam == 0.004


@pytest.mark.parametrize("family", FAMILIES)
def test_default_knobs_give_the_model_config_defaults(family):
  """The configs take their model values from `models.config.DEFAULTS`, the one home."""
  model = _get(family).model.to_dict()
  assert model and {k: model_config.DEFAULTS[k] for k in model} == model
