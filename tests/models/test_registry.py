import jax
import ml_collections
import numpy as np
import pytest

from icmh_jax.errors import ConfigError
from icmh_jax import trace_cache
from icmh_jax.models import config, registry


def test_unknown_system_names_the_known_ones():
  with pytest.raises(ConfigError, match=r"unknown system 'fr-icmh'; known: fr_icmh, icmh_ff, "
                                        r"pr_icmh, sa_icm, tcm"):
    registry.get_system("fr-icmh", {})


def test_unknown_config_field_is_refused_listing_known_fields():
  with pytest.raises(ConfigError, match=r"unknown model config field\(s\) Nm; known: M, N, N_machine"):
    registry.get_system("fr_icmh", {"Nm": 64})


@pytest.mark.parametrize("field,value", [("residual_context", "both"), ("fr_hyper_input", "x")])
def test_bad_choice_names_the_allowed_values(field, value):
  with pytest.raises(ConfigError, match=f"{field}='{value}' is not allowed"):
    registry.get_system("fr_icmh", {field: value})


def test_more_additional_slices_than_machine_slices_is_refused():
  with pytest.raises(ConfigError, match="num_slices_a=6 must not exceed num_slices_m=5"):
    registry.get_system("fr_icmh", {"num_slices_a": 6})


def test_M_must_match_slices_times_width():
  with pytest.raises(ConfigError, match="M=256 must equal num_slices_m \\* slice_width"):
    registry.get_system("sa_icm", {"M": 256})


def test_config_dict_and_defaults_resolve_to_paper_values():
  cfg = ml_collections.ConfigDict({"num_slices_a": 4, "depths": [1] * 6})
  system = registry.get_system("pr_icmh", cfg)
  assert system.config["num_slices_a"] == 4 and system.config["depths"] == (1,) * 6
  assert system.config["M"] == 320 and system.config["num_slices_m"] == 5
  assert system.config["residual_context"] == "none"
  assert system.config["fr_hyper_input"] == "residual"


@pytest.mark.parametrize("name,layer,key", [
    ("tcm", "machine", "base"), ("sa_icm", "machine", "base"), ("icmh_ff", "human", "additional"),
    ("fr_icmh", "human", "additional"), ("pr_icmh", "human", "additional")])
def test_trained_layer_and_trainable_subtree(name, layer, key):
  system = registry.get_system(name, {})
  assert system.name == name
  assert system.trained_layer == layer
  assert system.trainable_key() == key


def test_random_init_without_a_name_is_a_config_error():
  with pytest.raises(ConfigError, match="needs a system name"):
    registry.load_system(None)


def test_pr_icmh_refuses_a_machine_context():
  with pytest.raises(ConfigError, match="pr_icmh codes pixels"):
    registry.get_system("pr_icmh", {"residual_context": "machine"})


def test_old_width_name_is_refused_naming_the_new_one():
  with pytest.raises(ConfigError, match="model config field N_m was renamed to N_machine"):
    registry.get_system("sa_icm", {"N_m": 64})


@pytest.mark.slow  # moved out of the default suite (its 5-minute budget)
def test_checkpoint_meta_with_the_old_width_name_still_loads(tmp_path):
  from icmh_jax import params_io
  tiny = dict(N_machine=32, M=128, num_slices_m=2, num_slices_a=1, depths=(1,) * 6,
              head_dims=(16,) * 6, inter_dim=32, cc_hidden=(32, 32), z_channels=32)
  system, params = registry.load_system(None, name="sa_icm", model_config=tiny)
  old = {k if k != "N_machine" else "N_m": v for k, v in tiny.items()}  # meta as written before
  params_io.save_params(tmp_path / "p", params, {"system": "sa_icm", "model": old})
  loaded, got = registry.load_system(tmp_path / "p")
  assert loaded.config == system.config and loaded.config["N_machine"] == 32
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ConfigError, match="both N_m and N_machine"):
    config.upgrade_meta({"model": {"N_m": 1, "N_machine": 2}})


def test_systems_are_equal_by_name_and_config():
  """Equal systems build the same modules, so train.step serves both from one traced step."""
  a, b = registry.get_system("fr_icmh", {"N": 64}), registry.get_system("fr_icmh", {"N": 64})
  assert a is not b and a == b and hash(a) == hash(b)
  assert a != registry.get_system("fr_icmh", {"N": 96})
  assert a != registry.get_system("icmh_ff", {"N": 64})


def test_param_shapes_are_kept_beside_the_compilation_cache(tmp_path, monkeypatch):
  system = registry.get_system("tcm", {"N_machine": 32, "M": 80, "slice_width": 16,
                                       "depths": (1,) * 6, "head_dims": (8,) * 6})
  traced = jax.eval_shape(lambda rng: system.init(rng, registry.INIT_SHAPE), jax.random.key(0))
  monkeypatch.setattr(trace_cache, "cache_dir", lambda: str(tmp_path))
  assert registry.param_shapes(system) == traced  # traced, then written
  (entry,) = (tmp_path / "icmh_param_shapes").iterdir()
  monkeypatch.setattr(type(system), "init", lambda *a: pytest.fail("traced again"))
  assert registry.param_shapes(system) == traced  # read back: the same tree, shapes and dtypes
  entry.write_text("{damaged")
  monkeypatch.undo()
  monkeypatch.setattr(trace_cache, "cache_dir", lambda: str(tmp_path))
  other = registry.get_system("tcm", {"N_machine": 48, "M": 80, "slice_width": 16,
                                      "depths": (1,) * 6, "head_dims": (8,) * 6})
  registry.param_shapes(other)
  assert len(list((tmp_path / "icmh_param_shapes").iterdir())) == 2  # another config, another entry
  assert registry.param_shapes(system) == traced  # a damaged entry is traced and rewritten
  assert registry.param_shapes(system) == traced and entry.read_text().startswith("{\"")
