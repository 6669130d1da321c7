"""SA-ICM, the machine codec.  python train.py --config configs/sa_icm.py --workdir runs/sa_icm"""

from icmh_jax import config_files


def get_config(arg=None):
  arg = config_files.parse_arg(arg, lam=0.05, tiny=False)
  c = config_files.base_config("sa_icm")
  # Model: LIC-TCM with M = 320 in num_slices_m = 5 slices (the paper's N_m = 5); its width
  # N_machine is left open by the paper: 128. Values: the model config's defaults.
  c.model = config_files.model_fields("N_machine", "M", "num_slices_m", "slice_width")
  # Loss (eq. 1): R(y) + R(z) + lam * 255**2 * mse(m * x, m * x_hat), m = edge map, lam = 0.05.
  c.loss = dict(lam=arg.lam, mask="edges")
  return config_files.shrink(c) if arg.tiny else c
