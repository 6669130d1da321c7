"""LIC-TCM on the full image.  python train.py --config configs/tcm.py:lam=0.013 --workdir runs/tcm"""

from icmh_jax import config_files


def get_config(arg=None):
  arg = config_files.parse_arg(arg, lam=0.013, N=128, tiny=False)
  c = config_files.base_config("tcm")
  # Model: LIC-TCM (N, M = 320 in 5 slices of 64); only the "machine" (= only) layer.
  c.model = config_files.model_fields("M", "num_slices_m", "slice_width", N_machine=arg.N)
  # Loss: R(y) + R(z) + lam * 255**2 * mse(x, x_hat); lam 0.013 is LIC-TCM's middle rate.
  c.loss = dict(lam=arg.lam, mask="none")
  return config_files.shrink(c) if arg.tiny else c
