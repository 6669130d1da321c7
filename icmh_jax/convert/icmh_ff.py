"""Reference ICMH checkpoints (final-0/ICM-v1 `ICM` + `ICA`, or any LIC-TCM pair) -> our params.

The public ICMH-FF code saves the machine codec (`ICM`, LIC-TCM names) and the additional codec
(`ICA`, the same names with M = 64 m and g_s taking 320 channels) as two separate state_dicts
whose key names collide, so each is converted on its own with the LIC-TCM key table
(`icmh_jax.convert.tcm`) into `params["base"]` / `params["additional"]` of a system from the
registry (`icmh_ff`, or `fr_icmh` whose additional codec has the same tree). The released
checkpoint is N = 128 with m = 4: `get_system("icmh_ff", {"N_machine": 128, "N": 128, "num_slices_a": 4})`.
"""

from icmh_jax.models.registry import param_shapes


def from_reference(system, machine_sd: dict, additional_sd: dict | None = None) -> dict:
  """Converts reference state_dicts into the system's params tree.

  Args:
    system: a `System` whose config matches the checkpoints (sizes are checked per key).
    machine_sd: {reference key: array} of the machine codec (PyTorch layouts).
    additional_sd: the same for the additional codec (required iff the system has one).

  Returns:
    {"base": ...} or {"base": ..., "additional": ...} with numpy leaves.

  Raises:
    CheckpointError: missing / unexpected keys or shape mismatches (listed), per branch.
    ValueError: an additional state_dict given to a machine-only system or missing.
  """
  from icmh_jax.convert.tcm import from_reference as tcm_from_reference
  if (additional_sd is not None) != system.has_additional:
    raise ValueError(f"system {system.name} "
                     f"{'needs' if system.has_additional else 'has no'} additional state_dict")
  template = param_shapes(system)
  params = {"base": tcm_from_reference(machine_sd, template["base"])}
  if additional_sd is not None:
    params["additional"] = tcm_from_reference(additional_sd, template["additional"])
  return params


def load_reference(system, machine_path, additional_path=None) -> dict:
  """`from_reference` on checkpoint files (.pth via torch weights_only, or .npz)."""
  from icmh_jax.convert.pth import load_state_dict
  additional = None if additional_path is None else load_state_dict(additional_path)
  return from_reference(system, load_state_dict(machine_path), additional)
