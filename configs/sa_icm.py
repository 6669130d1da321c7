"""SA-ICM, the machine codec.  python train.py --config configs/sa_icm.py --workdir runs/sa_icm"""

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, lam=0.05, tiny=False)
  c = common.base_config("sa_icm")
  # Model: LIC-TCM with M = 320 in N_m = 5 slices; N_m (width) is left open by the paper: 128.
  c.model = dict(N_m=128, M=320, num_slices_m=5, slice_width=64)
  # Loss (eq. 1): R(y) + R(z) + lam * 255**2 * mse(m * x, m * x_hat), m = edge map, lam = 0.05.
  c.loss = dict(lam=arg.lam, mask="edges")
  return common.shrink(c) if arg.tiny else c
