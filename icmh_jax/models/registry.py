"""The one registry of ICMH systems: `get_system(name, model_config) -> System`.

Every caller (CLI, train.py, evaluate.py, converters) builds its model here. `model_config` is
`config.model` of a run: a flat mapping (dict or `ConfigDict`) with the fields below; a field left
out takes its default, an unknown field raises `ConfigError` listing the known ones.

Model config fields (paper names; defaults are the paper-faithful choice):
  N_m: SA-ICM's (machine codec's) transform width N. The paper leaves it open; 128 = LIC-TCM.
  M: the machine latent's channels, 320 (= num_slices_m * slice_width).
  num_slices_m: the machine codec's Ch-ARM slices, N_m = 5 in the paper (we keep `N_m` for width).
  N: the additional codec's transform width (icmh_ff, fr_icmh, pr_icmh), 128.
  num_slices_a: N_a, the additional codec's slices (3, 4 or 5); its latent has 64 * N_a channels.
  slice_width: channels per Ch-ARM slice, 64.
  max_support_slices: earlier slices a slice's Ch-ARM sees, 5.
  residual_context: "none" (paper) or "machine" (our extension, fr_icmh and icmh_ff: the additional
    Ch-ARM also sees the machine latent y_hat_m in every slice's support).
  fr_hyper_input: "residual" (default: FR-ICMH's hyperprior sees y_a = y - y_hat_m) or "y".
  depths, head_dims, window_size: the transformer blocks of g_a / g_s (LIC-TCM: (2,)*6,
    (8, 16, 32, 32, 16, 8), 8), shared by both codecs; tiny configs shrink them.
  hyper_window_size: window of the hyperprior's Swin blocks, 4.
  z_channels: hyper-latent channels, 192.
  inter_dim: SWAtten's inner width in the Ch-ARM, 128.
  cc_hidden: hidden widths of the Ch-ARM's mean/scale/LRP nets, (224, 128).
  pad_multiple: images are zero-padded to a multiple of this before coding (LIC-TCM eval: 128).
"""

from typing import Any, Mapping

from icmh_jax.errors import ConfigError

SYSTEMS = ("tcm", "sa_icm", "icmh_ff", "fr_icmh", "pr_icmh")

DEFAULTS = dict(
    N_m=128,
    M=320,
    num_slices_m=5,
    N=128,
    num_slices_a=3,
    slice_width=64,
    max_support_slices=5,
    residual_context="none",
    fr_hyper_input="residual",
    depths=(2, 2, 2, 2, 2, 2),
    head_dims=(8, 16, 32, 32, 16, 8),
    window_size=8,
    hyper_window_size=4,
    z_channels=192,
    inter_dim=128,
    cc_hidden=(224, 128),
    pad_multiple=128,
)

INIT_SHAPE = (1, 64, 64, 3)  # image shape `load_system` initialises with
_CHOICES = dict(residual_context=("none", "machine"), fr_hyper_input=("residual", "y"))


def _as_dict(model_config) -> dict[str, Any]:
  if model_config is None:
    return {}
  if hasattr(model_config, "to_dict"):
    model_config = model_config.to_dict()
  if not isinstance(model_config, Mapping):
    raise ConfigError(f"model config must be a mapping, got {type(model_config).__name__}")
  return dict(model_config)


def resolve_config(model_config=None) -> dict[str, Any]:
  """Fills defaults and validates a model config.

  Args:
    model_config: a mapping of the fields in this module's docstring (any subset), or None.

  Returns:
    A plain dict with every field, tuples for sequence fields.

  Raises:
    ConfigError: an unknown field, a bad choice, or inconsistent sizes.
  """
  given = _as_dict(model_config)
  unknown = sorted(set(given) - set(DEFAULTS))
  if unknown:
    raise ConfigError(f"unknown model config field(s) {', '.join(unknown)}; "
                      f"known: {', '.join(sorted(DEFAULTS))}")
  c = {**DEFAULTS, **given}
  for key in ("depths", "head_dims", "cc_hidden"):
    c[key] = tuple(int(v) for v in c[key])
  for key, allowed in _CHOICES.items():
    if c[key] not in allowed:
      raise ConfigError(f"{key}={c[key]!r} is not allowed; choose one of {', '.join(allowed)}")
  for key in ("N_m", "M", "num_slices_m", "N", "num_slices_a", "slice_width", "pad_multiple"):
    if int(c[key]) <= 0:
      raise ConfigError(f"{key}={c[key]!r} must be a positive integer")
    c[key] = int(c[key])
  if c["pad_multiple"] % 64:
    raise ConfigError(f"pad_multiple={c['pad_multiple']} must be a multiple of 64 (x -> z stride)")
  if c["num_slices_m"] * c["slice_width"] != c["M"]:
    raise ConfigError(f"M={c['M']} must equal num_slices_m * slice_width = "
                      f"{c['num_slices_m']} * {c['slice_width']}")
  if c["num_slices_a"] > c["num_slices_m"]:
    raise ConfigError(f"num_slices_a={c['num_slices_a']} must not exceed num_slices_m="
                      f"{c['num_slices_m']} (the human layer refines machine slices)")
  return c


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
  return system_class(name)(name, config)


def system_class(name: str):
  """The `System` subclass of a registry name (imported on demand: no JAX for `--help`)."""
  if name not in SYSTEMS:
    raise ConfigError(f"unknown system {name!r}; known: {', '.join(sorted(SYSTEMS))}")
  if name in ("tcm", "sa_icm"):
    from icmh_jax.models import sa_icm
    return sa_icm.SAICM
  if name == "icmh_ff":
    from icmh_jax.models import icmh_ff
    return icmh_ff.ICMHFF
  if name == "fr_icmh":
    from icmh_jax.models import fr_icmh
    return fr_icmh.FRICMH
  from icmh_jax.models import pr_icmh
  return pr_icmh.PRICMH


def load_system(checkpoint=None, *, name: str | None = None, model_config=None, seed: int = 0):
  """A system with its parameters: from a checkpoint, or a random init (tests, demos).

  Args:
    checkpoint: a params directory or training workdir (`icmh_jax.params_io.load_params`);
      its meta names the system and model config. None: random init with `seed`.
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
    import jax
    # Parameter shapes do not depend on the image size; a small one keeps the init cheap.
    return system, system.init(jax.random.key(seed), INIT_SHAPE)
  import jax
  from icmh_jax.params_io import load_params, read_meta
  meta = read_meta(checkpoint)
  found = meta.get("system")
  if name is not None and found != name:
    raise ConfigError(f"checkpoint {checkpoint} holds system {found!r}, not {name!r}")
  system = get_system(found, meta.get("model"))
  # Checked against the config's tree: a mismatch lists missing / unexpected keys and shapes.
  like = jax.eval_shape(lambda rng: system.init(rng, INIT_SHAPE), jax.random.key(0))
  params, _ = load_params(checkpoint, like=like)
  return system, params
