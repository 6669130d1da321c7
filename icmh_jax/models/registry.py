"""The one registry of ICMH systems: `get_system(name, model_config) -> System`.

Every caller (CLI, train.py, evaluate.py, converters) builds its model here. `model_config` is
`config.model` of a run: a flat mapping (dict or `ConfigDict`) of the fields that
`icmh_jax.models.config` defines (with their defaults and checks); a field left out takes its
default, an unknown field raises `ConfigError` listing the known ones.
"""

import json

import jax
import numpy as np

from icmh_jax import params_io
from icmh_jax.errors import ConfigError
from icmh_jax import trace_cache
from icmh_jax.models.config import resolve_config, upgrade_meta
from icmh_jax.models.fr_icmh import FRICMH
from icmh_jax.models.icmh_ff import ICMHFF
from icmh_jax.models.pr_icmh import PRICMH
from icmh_jax.models.sa_icm import SAICM

SYSTEMS = ("tcm", "sa_icm", "icmh_ff", "fr_icmh", "pr_icmh")
_CLASSES = dict(tcm=SAICM, sa_icm=SAICM, icmh_ff=ICMHFF, fr_icmh=FRICMH, pr_icmh=PRICMH)
INIT_SHAPE = (1, 64, 64, 3)  # image shape `load_system` initialises with


def get_system(name: str, model_config=None):
  """Builds the system `name` for a model config.

  Args:
    name: one of `SYSTEMS`.
    model_config: mapping of model fields (see module docstring); missing fields take defaults.

  Returns:
    A `icmh_jax.models.system.System`.

  Raises:
    ConfigError: unknown system name or bad config.
  """
  if name not in SYSTEMS:
    raise ConfigError(f"unknown system {name!r}; known: {', '.join(sorted(SYSTEMS))}")
  config = resolve_config(model_config)
  return _CLASSES[name](name, config)


def load_system(checkpoint=None, *, name: str | None = None, model_config=None, seed: int = 0):
  """A system with its parameters: from a checkpoint, or a random init (tests, demos).

  Args:
    checkpoint: a params directory or training workdir (`icmh_jax.params_io.load_params`);
      its meta names the system and model config (old field names translated by
      `config.upgrade_meta`). None: random init with `seed`.
    name: the expected system name (required without a checkpoint).
    model_config: model config for a random init (ignored with a checkpoint).
    seed: PRNG seed of the random init; the same (name, config, seed) gives the same params.

  Returns:
    (System, params).

  Raises:
    ConfigError: no name without a checkpoint, or the checkpoint holds another system.
    CheckpointError: the checkpoint cannot be read.
  """
  if checkpoint is None:
    if name is None:
      raise ConfigError("a random init needs a system name (e.g. --system fr_icmh)")
    system = get_system(name, model_config)
    # Parameter shapes do not depend on the image size; a small one keeps the init cheap.
    return system, system.init(jax.random.key(seed), INIT_SHAPE)
  meta = upgrade_meta(params_io.read_meta(checkpoint))
  found = meta.get("system")
  if name is not None and found != name:
    raise ConfigError(f"checkpoint {checkpoint} holds system {found!r}, not {name!r}")
  system = get_system(found, meta.get("model"))
  # Checked against the config's tree: a mismatch lists missing / unexpected keys and shapes.
  params, _ = params_io.load_params(checkpoint, like=param_shapes(system))
  return system, params


def param_shapes(system) -> dict:
  """The params tree of `system`'s config as `jax.ShapeDtypeStruct`s (`jax.eval_shape` of its
  init), kept in `trace_cache` once traced (the trace takes seconds)."""
  path = trace_cache.entry_path("param_shapes", repr((system.name, sorted(system.config.items()),
                                                      INIT_SHAPE)), ".json")
  if path is not None and path.is_file():
    try:
      saved = json.loads(path.read_text())
      return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(tuple(leaf["shape"]), leaf["dtype"]),
                          saved, is_leaf=lambda v: isinstance(v, dict) and "shape" in v)
    except (OSError, ValueError, KeyError, TypeError):
      pass  # a damaged entry: traced again and rewritten
  like = jax.eval_shape(lambda rng: system.init(rng, INIT_SHAPE), jax.random.key(0))
  if path is not None:
    plain = jax.tree.map(lambda a: {"shape": list(a.shape), "dtype": np.dtype(a.dtype).name}, like)
    trace_cache.write(path, json.dumps(plain).encode())
  return like
