"""`icmh convert FAMILY CHECKPOINT OUT_DIR`: a PyTorch release -> an icmh params checkpoint.

OUT_DIR must be new or empty; `--overwrite` replaces it only when it is a params directory of ours
(`icmh_jax.convert.target`), so a mistyped OUT_DIR never destroys a folder. `tcm` reads N, M and
the slice count from the state_dict; `--N` / `--M` / `--slices`, when given, must agree with it.
"""

import pathlib

from icmh_jax.convert.target import check_target

NAME = "convert"
HELP = "convert a PyTorch checkpoint (.pth, or an .npz state_dict) into an icmh params directory"


def _convert_tcm(args) -> dict:
  """LIC-TCM / SA-ICM weights -> {"base": TCM params}, meta for the registry's `tcm` system."""
  from icmh_jax.convert.pth import load_state_dict
  from icmh_jax.convert.tcm import convert_checkpoint, resolve_sizes
  from icmh_jax.params_io import save_params
  state_dict = load_state_dict(args.checkpoint)
  sizes = resolve_sizes(state_dict, N=args.N, M=args.M, num_slices=args.slices)
  _, params = convert_checkpoint(state_dict, sizes["N"], sizes["M"], sizes["num_slices"])
  meta = {"system": args.system,
          "model": {"N_machine": sizes["N"], "M": sizes["M"], "num_slices_m": sizes["num_slices"]},
          "source": str(args.checkpoint)}
  save_params(args.out_dir, {"base": params}, meta)
  return meta


def _convert_sam(args) -> dict:
  """Segment Anything v1 weights -> SAM params, meta naming the config (vit_b / vit_l / vit_h)."""
  from icmh_jax.convert.sam import convert_checkpoint
  return convert_checkpoint(args.checkpoint, args.out_dir, args.sam_config)


# family -> converter(args) -> meta written; another family is one line here plus its options.
FAMILIES = {"tcm": _convert_tcm, "sam": _convert_sam}


def add_arguments(p):
  p.add_argument("family", choices=sorted(FAMILIES), help="which release format")
  p.add_argument("checkpoint", type=pathlib.Path, help="PyTorch .pth (or .npz state_dict)")
  p.add_argument("out_dir", type=pathlib.Path, help="params directory to write (new or empty)")
  p.add_argument("--overwrite", action="store_true",
                 help="replace OUT_DIR if it is a params directory written by icmh")
  tcm = p.add_argument_group("tcm (sizes are read from the state_dict; given ones must agree)")
  tcm.add_argument("--N", type=int, help="LIC-TCM width N (64 or 128 released)")
  tcm.add_argument("--M", type=int, help="latent channels M")
  tcm.add_argument("--slices", type=int, help="Ch-ARM slices")
  tcm.add_argument("--system", default="tcm", choices=("tcm", "sa_icm"),
                   help="registry system the weights serve")
  sam = p.add_argument_group("sam")
  sam.add_argument("--sam-config", default="vit_h", choices=("vit_b", "vit_l", "vit_h"),
                   help="SAM v1 model size of the checkpoint (the reference's default: vit_h)")


def run(args) -> int:
  check_target(args.out_dir, args.overwrite)
  meta = FAMILIES[args.family](args)
  print(f"wrote {args.out_dir} ({args.family}: {meta.get('model', {})})")
  return 0
