"""`icmh params --system pr_icmh --na 3 [--N 128]`: parameter counts from `jax.eval_shape`.

Also `icmh params --model tcm --N 128 --M 320 --slices 5` (one command; --model is --system).
`--N` / `--slices` set the trained codec's width and slices (the additional codec of a
human-layer system, the machine codec otherwise); `--N-machine` sets the machine codec's width.
"""

import json

NAME = "params"
HELP = "parameter counts (base, additional, total) of a system, without materialising weights"
# The paper's Table II: parameters of the additional model (FR-ICMH, N = 128, M = 320) per N_a.
PAPER_TABLE_II = {3: 58.7e6, 4: 67.0e6, 5: 76.6e6}


def add_arguments(p):
  p.add_argument("--system", "--model", dest="system", required=True,
                 help="registry name: tcm, sa_icm, icmh_ff, fr_icmh, pr_icmh")
  p.add_argument("--na", type=int, help="N_a: slices of the additional codec (num_slices_a)")
  p.add_argument("--N", type=int, help="width N of the trained codec")
  p.add_argument("--N-machine", dest="N_machine", type=int,
                 help="width N_machine of the machine codec")
  p.add_argument("--M", type=int, help="machine latent channels M (default 320)")
  p.add_argument("--slices", type=int, help="slices of the trained codec")
  p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
  from icmh_jax.models import registry
  probe = registry.get_system(args.system, {})
  human = probe.trained_layer == "human"
  cfg = {}
  for field, value in (("N" if human else "N_machine", args.N), ("N_machine", args.N_machine),
                       ("num_slices_a", args.na),
                       ("num_slices_a" if human else "num_slices_m", args.slices)):
    if value is not None:
      cfg[field] = value
  if args.M is not None:
    cfg["M"] = args.M
    cfg.setdefault("num_slices_m", args.M // 64)
  system = registry.get_system(args.system, cfg)
  counts = system.param_counts()
  c = system.config
  doc = {"system": system.name, "config": {k: c[k] for k in ("N_machine", "M", "num_slices_m",
                                                                "N", "num_slices_a")},
         **counts, "total": counts["base"] + counts["additional"]}
  paper = PAPER_TABLE_II.get(c["num_slices_a"])
  if human and paper and c["N"] == 128 and c["M"] == 320:
    doc["paper_table_ii_additional"] = paper
  if args.json:
    print(json.dumps(doc))
    return 0
  print(f"{system.name}  " + "  ".join(f"{k}={v}" for k, v in doc["config"].items()))
  print(f"  base        {counts['base']:>13,}  ({counts['base'] / 1e6:.2f} M)")
  line = f"  additional  {counts['additional']:>13,}  ({counts['additional'] / 1e6:.2f} M)"
  if "paper_table_ii_additional" in doc:
    line += f"   paper Table II: {paper / 1e6:.1f} M"
  print(line)
  print(f"  total       {doc['total']:>13,}  ({doc['total'] / 1e6:.2f} M)")
  return 0
