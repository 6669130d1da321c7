"""CLI tests build the same deterministic random-init systems over and over (`--random-init`
with one tiny config in every test): build each (system, config, seed) once per session."""

import json

import pytest


@pytest.fixture(scope="session", autouse=True)
def random_init_once():
  """`registry.load_system(None, ...)` memoised on (name, model config, seed). The weights are a
  pure function of those three (the registry's contract), so sharing them changes no result."""
  from icmh_jax.models import registry
  original, built = registry.load_system, {}

  def load_system(checkpoint=None, *, name=None, model_config=None, seed=0):
    if checkpoint is not None or name is None:
      return original(checkpoint, name=name, model_config=model_config, seed=seed)
    key = (name, json.dumps(model_config, sort_keys=True, default=repr), seed)
    if key not in built:
      built[key] = original(None, name=name, model_config=model_config, seed=seed)
    return built[key]

  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(registry, "load_system", load_system)
    yield built
