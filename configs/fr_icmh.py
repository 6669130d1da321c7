"""FR-ICMH over a frozen SA-ICM.
python train.py --config configs/fr_icmh.py:na=4,lam=0.01 --config.base_checkpoint=runs/sa_icm \
    --workdir runs/fr4_001
"""

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, na=3, lam=0.01, tiny=False)
  c = common.base_config("fr_icmh")
  # Model: frozen SA-ICM + additional g_a; encoder-side residual y_a_k = y_k - y_hat_m_k, k <= N_a.
  c.model = dict(N_m=128, M=320, num_slices_m=5, slice_width=64, N=128,
                 num_slices_a=common.check_choice("na", arg.na, common.NUM_SLICES_A),
                 residual_context="none",  # "machine": Ch-ARM also sees y_hat_m (our extension)
                 fr_hyper_input="residual")  # the hyperprior sees y_a (the paper leaves it open)
  # Loss (eq. 5): R(y_a) + R(z) + lam * 255**2 * mse(x, x_hat).
  c.loss = dict(lam=common.check_choice("lam", arg.lam, common.LAMBDAS), mask="none")
  c.base_checkpoint = "runs/sa_icm"
  return common.shrink(c) if arg.tiny else c
