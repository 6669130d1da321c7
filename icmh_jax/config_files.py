"""Config files: the recipe pieces `configs/*.py` share, and the one loader of a config file.

A config file (`configs/<family>.py`, `get_config(arg)`) reads its knobs with
`parse_arg(arg, **defaults)` and, when `tiny` is set, returns `shrink(config)`: the same run at CPU
scale (narrow transforms, 128² crops, a few hundred steps). `load("path.py:knobs", overrides)` is
how train.py, evaluate.py, the demo and the benchmarks read one: it imports the file by its path,
locks the config and applies `--config.a.b=v` style overrides, refusing unknown fields (and
renamed model fields, naming the new one). This module lives in the package so that library code
never imports the top-level `configs` package, which the wheel does not install.
"""

import ast
import importlib.util
import math
import os
from typing import Any, Iterable, Mapping

import ml_collections

from icmh_jax.errors import ConfigError
from icmh_jax.models.config import DEFAULTS, RENAMED

# The repository's config files (a source checkout has them; the wheel does not install them).
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")

# The paper's λ grid for the additional codecs: the RD points it reports. Not a limit: `lam` (the
# knob or --config.loss.lam alike) may be any positive number, checked by `check_lam`.
LAMBDAS = (0.005, 0.01, 0.02, 0.03, 0.05)
NUM_SLICES_A = (3, 4, 5)  # N_a


def _convert(key, text, default):
  """`text` as the type of `default` (bool knobs also accept a bare name: `tiny`)."""
  try:
    if isinstance(default, bool):
      if text.lower() in ("", "1", "true", "yes"):
        return True
      if text.lower() in ("0", "false", "no"):
        return False
      raise ValueError(text)
    return type(default)(text)
  except ValueError:
    raise ConfigError(f"config knob {key}={text!r} is not a valid {type(default).__name__}") from None


def parse_arg(arg, **defaults) -> ml_collections.ConfigDict:
  """Parses `"na=4,lam=0.01,tiny"` against the known knobs and their defaults.

  Args:
    arg: the text after `:` in `--config file.py:ARG`, or None.
    **defaults: every known knob with its default (the default's type is the knob's type).

  Returns:
    A locked ConfigDict with one field per knob.

  Raises:
    ConfigError: an unknown knob (the message lists the known ones) or an unparsable value.
  """
  values = dict(defaults)
  for item in (arg or "").split(","):
    if not item.strip():
      continue
    key, _, text = item.partition("=")
    key = key.strip()
    if key not in defaults:
      raise ConfigError(f"unknown config knob {key!r}; known: {', '.join(sorted(defaults))}")
    values[key] = _convert(key, text.strip(), defaults[key])
  out = ml_collections.ConfigDict(values)
  out.lock()
  return out


def check_choice(name, value, allowed):
  """Raises `ConfigError` unless `value` is one of `allowed`."""
  if value not in allowed:
    raise ConfigError(f"config knob {name}={value!r} is not allowed; choose one of "
                      f"{', '.join(str(a) for a in allowed)}")
  return value


def check_lam(name, value) -> float:
  """Raises `ConfigError` unless λ is a finite positive number (D = λ · 255² · mse)."""
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
    raise ConfigError(f"{name}={value!r} must be a positive number (the paper's grid: "
                      f"{', '.join(str(v) for v in LAMBDAS)})")
  return float(value)


def model_fields(*names, **values) -> dict:
  """A `config.model` naming `names` at their defaults (`icmh_jax.models.config.DEFAULTS`, the one
  home of the defaults) and `values` at the given ones."""
  return {**{n: DEFAULTS[n] for n in names}, **values}


# CPU scale: N=32-wide transforms, 16-channel slices, one block per stage, small windows.
_TINY_MODEL = dict(N_machine=32, N=32, slice_width=16, depths=(1, 1, 1, 1, 1, 1),
                   head_dims=(8, 8, 8, 8, 8, 8), window_size=4, hyper_window_size=2, z_channels=32,
                   inter_dim=32, cc_hidden=(32, 32))


def shrink(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The `tiny` variant of `config`: same system, loss and recipe at CPU scale."""
  c = config
  for key, value in _TINY_MODEL.items():
    c.model[key] = value
  c.model.M = c.model.num_slices_m * c.model.slice_width
  c.data.crop, c.data.batch_size = 128, 2
  c.schedule.total_steps, c.schedule.milestones = 300, (250,)
  c.log_every, c.ckpt_every, c.eval_every = 10, 100, 100
  c.eval.num_batches, c.eval.compress_images = 2, 1
  if c.base_checkpoint:  # tiny human layers sit on a tiny SA-ICM (configs/sa_icm.py:tiny)
    c.base_checkpoint += "_tiny"
  return c


def base_config(system: str, seed: int = 0) -> ml_collections.ConfigDict:
  """The recipe every family shares (LIC-TCM / paper training), before the family's own fields.

  Sections: optimiser (Adam 1e-4, clip 1.0; auxiliary Adam 1e-3 for the factorized priors'
  quantiles), multi-step LR decay, data (bundled photos with Canny edge maps unless a precomputed
  COCO set is named), periods, checkpoints, precision.
  """
  c = ml_collections.ConfigDict()
  c.system, c.seed = system, seed
  c.model = ml_collections.ConfigDict()
  c.loss = dict(lam=0.01, mask="none")  # loss = R + lam * 255**2 * mse(m * x, m * x_hat)
  # mask_source of the bundled set: "canny", or "sam" (sam_checkpoint needed to write it once).
  c.data = dict(name="bundled", dir="", crop=256, batch_size=8, mask_source="canny",
                sam_checkpoint="", shuffle_seed=0)
  c.optim = dict(lr=1e-4, aux_lr=1e-3, clip_norm=1.0)
  c.schedule = dict(total_steps=600_000, milestones=(450_000, 550_000), gamma=0.1)
  c.log_every, c.ckpt_every, c.eval_every = 100, 5_000, 50_000
  c.eval = dict(num_batches=8, compress_images=2)  # compress_images: real .icmh files per eval
  c.keep_ckpts = 3  # the newest n; the best by validation loss is kept besides
  c.compute_dtype = "float32"  # or "bfloat16" (params stay float32)
  # Gradient checkpointing: keep only each ConvTransBlock's input for the backward and recompute
  # the block there (less memory, a little more compute; layers/remat.py). Unset: on where it
  # pays, for a trained codec of width N >= 128 (train/step.remat_enabled).
  c.remat = ml_collections.config_dict.placeholder(bool)
  # What is recomputed: "transformer" (the ConvTransBlocks' Swin branch: most of a block's saved
  # bytes for a third of its FLOPs) or "block" (whole ConvTransBlocks: least memory). LIC-TCM
  # N=128, batch 8 x 256²: 47.9-48.8 s per step and 13.6-13.9 GB peak RSS against 53.6 s and
  # 12.4 GB for "block" (BENCHMARKS.md, session 15); the PyTorch reference peaks at 16.0 GB.
  c.remat_scope = "transformer"
  c.init_from = ""  # a params dir / workdir to start from when the workdir has no checkpoint
  c.base_checkpoint = ""  # the frozen SA-ICM of the human-layer systems
  return c


def human_layer_config(system: str, arg=None, **model) -> ml_collections.ConfigDict:
  """The recipe of the human-layer systems (ICMH-FF, FR-ICMH, PR-ICMH) over a frozen SA-ICM.

  Knobs: `na` (N_a, slices of the additional codec), `lam`, `tiny`. The model is SA-ICM's
  (N_machine = 128, M = 320 in 5 slices of 64) plus an additional codec of width N = 128 with
  N_a slices, at the model config's defaults; `**model` adds the family's own fields.
  Loss: R(additional layer) + R(z) + lam * 255**2 * mse(x, x_hat), the human layer only.
  """
  arg = parse_arg(arg, na=3, lam=0.01, tiny=False)
  c = base_config(system)
  c.model = model_fields("N_machine", "M", "num_slices_m", "slice_width", "N",
                         num_slices_a=check_choice("na", arg.na, NUM_SLICES_A), **model)
  c.loss = dict(lam=check_lam("lam", arg.lam), mask="none")
  c.base_checkpoint = "runs/sa_icm"
  return shrink(c) if arg.tiny else c


def family_spec(family: str, arg: str = "") -> str:
  """`load`'s spec of the repository's `configs/<family>.py` with knobs `arg`."""
  return os.path.join(CONFIG_DIR, f"{family}.py") + (f":{arg}" if arg else "")


def load(spec: str, overrides: Mapping[str, Any] | Iterable[str] = ()) -> ml_collections.ConfigDict:
  """The locked config of `path/to/file.py[:knobs]` with overrides applied.

  Args:
    spec: a config file path, optionally followed by `:knobs` (its `get_config(knobs)` argument).
    overrides: {"optim.lr": 5e-5, ...}, or command-line texts "optim.lr=5e-5" (the part after
      `--config.`; a value is a Python literal, or else a string).

  Returns:
    The ConfigDict, locked (so a later misspelt field fails too).

  Raises:
    ConfigError: a missing file, a bad knob, an unknown or renamed field, a value of the wrong type.
  """
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise ConfigError(f"config file {path} does not exist")
  name = "icmh_config_" + os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(arg or None)
  config.lock()
  items = overrides.items() if isinstance(overrides, Mapping) else map(_split_override, overrides)
  for key, value in items:
    _override(config, key, value)
  if "loss" in config and "lam" in config.loss:  # the knob and --config.loss.lam alike
    check_lam("loss.lam", config.loss.lam)
  return config


def parse_flags(argv: list[str]):
  """An absl `flags_parser` (`app.run(main, flags_parser=parse_flags)`): parses absl's flags and
  sets the `--config.a.b=VALUE` overrides aside, so `main` gets (argv, overrides for `load`)."""
  from absl import flags
  overrides = [a[len("--config."):] for a in argv[1:] if a.startswith("--config.")]
  return flags.FLAGS([a for a in argv if not a.startswith("--config.")]), overrides


def _split_override(text: str) -> tuple[str, Any]:
  key, eq, value = text.partition("=")
  if not eq:
    raise ConfigError(f"override --config.{text} needs a value: --config.{key}=VALUE")
  try:
    return key, ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return key, value  # a plain string (a path, a name)


def _override(config, key: str, value) -> None:
  *parents, field = key.split(".")
  node = config
  for i, part in enumerate(parents):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise ConfigError(f"unknown config field {'.'.join(parents[:i + 1])!r} (in --config.{key})")
    node = node[part]
  if not isinstance(node, ml_collections.ConfigDict) or field not in node:
    if parents == ["model"] and field in RENAMED:
      raise ConfigError(f"config field model.{field} was renamed to model.{RENAMED[field]}: "
                        f"--config.model.{RENAMED[field]}=...")
    known = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else ""
    raise ConfigError(f"unknown config field {key!r}; known at that level: {known}")
  if isinstance(node[field], tuple) and isinstance(value, list):
    value = tuple(value)
  try:
    node[field] = value
  except (TypeError, ValueError) as e:
    raise ConfigError(f"--config.{key}={value!r}: {e}") from None
