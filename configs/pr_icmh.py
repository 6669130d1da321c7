"""PR-ICMH over a frozen SA-ICM.
python train.py --config configs/pr_icmh.py:na=4,lam=0.01 --config.base_checkpoint=runs/sa_icm \
    --workdir runs/pr4_001
"""

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, na=3, lam=0.01, tiny=False)
  c = common.base_config("pr_icmh")
  # Model: frozen SA-ICM + an additional LIC-TCM with M = 64 * N_a coding x_d = x - x_hat_m.
  c.model = dict(N_m=128, M=320, num_slices_m=5, slice_width=64, N=128,
                 num_slices_a=common.check_choice("na", arg.na, common.NUM_SLICES_A))
  # Loss (eq. 6): R(y_d) + R(z_d) + lam * 255**2 * mse(x_d, x_hat_d) = ... mse(x, x_hat).
  c.loss = dict(lam=common.check_choice("lam", arg.lam, common.LAMBDAS), mask="none")
  c.base_checkpoint = "runs/sa_icm"
  return common.shrink(c) if arg.tiny else c
