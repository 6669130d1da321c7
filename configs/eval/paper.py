"""RD evaluation as in the paper: real bitstreams, BD-rate vs ICMH-FF (Table I), Table II, Fig. 6/7.

python evaluate.py --config configs/eval/paper.py --checkpoints runs/ --data coco_val \
    --config.data.dir=data/ --out eval_out
python evaluate.py --config configs/eval/paper.py:method=pchip --checkpoints runs/ --data kodak/ ...
python evaluate.py --config configs/eval/paper.py:tiny --checkpoints runs/ --data bundled ...
"""

import ml_collections

from icmh_jax import config_files

METHODS = ("cubic", "pchip", "akima")


def get_config(arg=None):
  arg = config_files.parse_arg(arg, method="cubic", limit=0, crop=0, tiny=False)
  c = ml_collections.ConfigDict()
  # BD-rate: fit and anchor (Table I is against ICMH-FF with the same N_a).
  c.bd = dict(method=config_files.check_choice("method", arg.method, METHODS), anchor="icmh_ff")
  # Data: split of a dataset (bundled / coco_val), edge maps for plain folders ("canny" or
  # "none") or the bundled set's mask source ("canny" or "sam"), optional central crop and image
  # limit (0 = whole images, all of them).
  c.data = dict(split="validation", dir="", edges="canny", crop=arg.crop, limit=arg.limit)
  # Output: keep every .icmh file under OUT/bitstreams/.
  c.keep_bitstreams = True
  # Table II also at the paper's sizes (registry defaults, N = 128) besides the evaluated models.
  c.table_ii_paper_size = True
  if arg.tiny:  # a CPU smoke run: two images, crops just above MS-SSIM's 160-pixel minimum
    c.bd.method = "pchip" if arg.method == "cubic" else arg.method
    c.data.crop, c.data.limit = arg.crop or 192, arg.limit or 2
    c.table_ii_paper_size = False
  return c
