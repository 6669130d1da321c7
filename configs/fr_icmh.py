"""FR-ICMH over a frozen SA-ICM.
python train.py --config configs/fr_icmh.py:na=4,lam=0.01 --config.base_checkpoint=runs/sa_icm \
    --workdir runs/fr4_001
"""

from icmh_jax import config_files


def get_config(arg=None):
  # An additional g_a; encoder-side residual y_a_k = y_k - y_hat_m_k, k <= N_a.
  # Loss (eq. 5): R(y_a) + R(z) + lam * 255**2 * mse(x, x_hat).
  return config_files.human_layer_config(
      "fr_icmh", arg,
      residual_context="none",  # "machine": Ch-ARM also sees y_hat_m (our extension)
      fr_hyper_input="residual")  # the hyperprior sees y_a (the paper leaves it open)
