"""PR-ICMH over a frozen SA-ICM.
python train.py --config configs/pr_icmh.py:na=4,lam=0.01 --config.base_checkpoint=runs/sa_icm \
    --workdir runs/pr4_001
"""

from icmh_jax import config_files


def get_config(arg=None):
  # An additional LIC-TCM with M = 64 * N_a coding x_d = x - x_hat_m.
  # Loss (eq. 6): R(y_d) + R(z_d) + lam * 255**2 * mse(x_d, x_hat_d) = ... mse(x, x_hat).
  return config_files.human_layer_config("pr_icmh", arg)
