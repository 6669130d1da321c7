"""Config files: knobs parse, unknown knobs fail naming the known ones, tiny shrinks consistently."""

import importlib

import pytest

from configs import common
from icmh_jax.errors import ConfigError
from icmh_jax.models import registry

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
                                       ("lam=0.04", "lam=0.04 is not allowed"),
                                       ("na=four", "not a valid int")])
def test_bad_knob_values_raise_config_error(arg, match):
  with pytest.raises(ConfigError, match=match):
    _get("icmh_ff", arg)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_config_resolves_in_the_registry_full_and_tiny(family):
  for arg in ("", "tiny"):
    c = _get(family, arg)
    model = registry.resolve_config(c.model)  # raises on unknown fields or M != slices * width
    assert model["M"] == model["num_slices_m"] * model["slice_width"]
    assert set(c.optim) == {"lr", "aux_lr", "clip_norm"}
  tiny = _get(family, "tiny")
  assert tiny.data.crop == 128 and tiny.schedule.total_steps == 300
  assert max(tiny.schedule.milestones) < tiny.schedule.total_steps


def test_tiny_human_layer_uses_the_tiny_base():
  assert _get("fr_icmh", "tiny").base_checkpoint == _get("fr_icmh").base_checkpoint + "_tiny"
  assert _get("sa_icm", "tiny").base_checkpoint == ""


def test_bool_knob_accepts_bare_name_and_false():
  assert common.parse_arg("tiny", tiny=False).tiny is True
  assert common.parse_arg("tiny=false", tiny=True).tiny is False
