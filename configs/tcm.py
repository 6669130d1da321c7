"""LIC-TCM on the full image.  python train.py --config configs/tcm.py:lam=0.013 --workdir runs/tcm"""

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, lam=0.013, N=128, tiny=False)
  c = common.base_config("tcm")
  # Model: LIC-TCM (N, M = 320 in 5 slices of 64); only the "machine" (= only) layer.
  c.model = dict(N_m=arg.N, M=320, num_slices_m=5, slice_width=64)
  # Loss: R(y) + R(z) + lam * 255**2 * mse(x, x_hat); lam 0.013 is LIC-TCM's middle rate.
  c.loss = dict(lam=arg.lam, mask="none")
  return common.shrink(c) if arg.tiny else c
