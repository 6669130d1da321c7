"""ICMH-FF baseline over a frozen SA-ICM.
python train.py --config configs/icmh_ff.py:na=4,lam=0.01 --config.base_checkpoint=runs/sa_icm \
    --workdir runs/ff4_001
"""

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, na=3, lam=0.01, tiny=False)
  c = common.base_config("icmh_ff")
  # Model: frozen SA-ICM (N_m, 5 slices of 64) + an additional LIC-TCM with N_a slices; decoder-side
  # fusion y_hat = y_hat_m + pad(y_hat_a).
  c.model = dict(N_m=128, M=320, num_slices_m=5, slice_width=64, N=128,
                 num_slices_a=common.check_choice("na", arg.na, common.NUM_SLICES_A))
  # Loss: R(y_a) + R(z_a) + lam * 255**2 * mse(x, x_hat) (the human layer only).
  c.loss = dict(lam=common.check_choice("lam", arg.lam, common.LAMBDAS), mask="none")
  c.base_checkpoint = "runs/sa_icm"
  return common.shrink(c) if arg.tiny else c
