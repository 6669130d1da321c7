"""The model config of every ICMH system: its fields, their defaults and their checks.

A model config is `config.model` of a run: a flat mapping (dict or `ConfigDict`); a field left out
takes its default, an unknown field raises `ConfigError` listing the known ones. This module is the
one home of the defaults (`configs/` and the registry read them here) and a leaf: it imports no
model code, so the registry, the bitstream and the config files can all use it.

Model config fields (paper names; defaults are the paper-faithful choice):
  N_machine: SA-ICM's (machine codec's) transform width N. The paper leaves it open; 128 =
    LIC-TCM. (Renamed from `N_m`: in the paper N_m is the machine codec's number of slices.)
  M: the machine latent's channels, 320 (= num_slices_m * slice_width).
  num_slices_m: the machine codec's Ch-ARM slices, the paper's N_m = 5.
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

DEFAULTS = dict(
    N_machine=128,
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

# Old field name -> new one. Configs and overrides with an old name are refused (the message names
# the new one); checkpoint meta written before a rename is translated on read (`upgrade_meta`).
RENAMED = {"N_m": "N_machine"}
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
  renamed = sorted(set(given) & set(RENAMED))
  if renamed:
    raise ConfigError(", ".join(f"model config field {old} was renamed to {RENAMED[old]}"
                                for old in renamed) + " (in the paper N_m is the number of machine "
                      "slices, num_slices_m); stored checkpoints are translated by "
                      "`upgrade_meta`")
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
  for key in ("N_machine", "M", "num_slices_m", "N", "num_slices_a", "slice_width", "pad_multiple"):
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


def upgrade_meta(meta: Mapping[str, Any]) -> dict:
  """Checkpoint meta with the model config's renamed fields translated (`RENAMED`).

  Params directories written before a rename keep the old names in `meta["model"]`; everything
  that reads stored meta (the registry, the trainer's base checkpoint check) goes through this.

  Raises:
    ConfigError: the model config holds both the old and the new name of a field.
  """
  meta = dict(meta)
  model = dict(meta.get("model") or {})
  for old, new in RENAMED.items():
    if old in model:
      if new in model:
        raise ConfigError(f"checkpoint meta holds both {old} and {new}")
      model[new] = model.pop(old)
  if "model" in meta:
    meta["model"] = model
  return meta
