"""`icmh convert FAMILY CHECKPOINT OUT_DIR`: a PyTorch release -> an icmh params checkpoint."""

import pathlib

NAME = "convert"
HELP = "convert a PyTorch checkpoint (.pth, or an .npz state_dict) into an icmh params directory"


def _convert_tcm(args) -> dict:
  """LIC-TCM / SA-ICM weights -> {"base": TCM params}, meta for the registry's `tcm` system."""
  from icmh_jax.convert.pth import load_state_dict
  from icmh_jax.convert.tcm import convert_checkpoint
  from icmh_jax.params_io import save_params
  _, params = convert_checkpoint(load_state_dict(args.checkpoint), args.N, args.M, args.slices)
  meta = {"system": args.system,
          "model": {"N_m": args.N, "M": args.M, "num_slices_m": args.slices},
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
  p.add_argument("out_dir", type=pathlib.Path, help="params directory to write")
  tcm = p.add_argument_group("tcm")
  tcm.add_argument("--N", type=int, default=128, help="LIC-TCM width N (64 or 128 released)")
  tcm.add_argument("--M", type=int, default=320, help="latent channels M")
  tcm.add_argument("--slices", type=int, default=5, help="Ch-ARM slices")
  tcm.add_argument("--system", default="tcm", choices=("tcm", "sa_icm"),
                   help="registry system the weights serve")
  sam = p.add_argument_group("sam")
  sam.add_argument("--sam-config", default="vit_h", choices=("vit_b", "vit_l", "vit_h"),
                   help="SAM v1 model size of the checkpoint (the reference's default: vit_h)")


def run(args) -> int:
  meta = FAMILIES[args.family](args)
  print(f"wrote {args.out_dir} ({args.family}: {meta.get('model', {})})")
  return 0
