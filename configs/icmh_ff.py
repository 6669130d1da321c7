"""ICMH-FF baseline over a frozen SA-ICM.
python train.py --config configs/icmh_ff.py:na=4,lam=0.01 --config.base_checkpoint=runs/sa_icm \
    --workdir runs/ff4_001
"""

from icmh_jax import config_files


def get_config(arg=None):
  # An additional LIC-TCM with N_a slices; decoder-side fusion y_hat = y_hat_m + pad(y_hat_a).
  # Loss: R(y_a) + R(z_a) + lam * 255**2 * mse(x, x_hat).
  return config_files.human_layer_config(
      "icmh_ff", arg,
      residual_context="none")  # "machine": Ch-ARM also sees y_hat_m (our extension)
