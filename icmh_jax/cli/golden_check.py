"""`icmh golden-check NAME PATH.npz`: compare a port with a PyTorch golden set (JSON beside the npz)."""

import importlib
import pathlib

from icmh_jax.errors import IcmhError

NAME = "golden-check"
HELP = "check a port against a PyTorch golden set (tcm, icmh_ff, sam); exit 0 only on PASS"
FAMILIES = ("tcm", "icmh_ff", "sam")


def add_arguments(p):
  p.add_argument("family", choices=FAMILIES, help="which reference the set comes from")
  p.add_argument("npz", type=pathlib.Path, help="the golden .npz; its .json must lie beside it")


def run(args) -> int:
  npz = args.npz
  meta = npz.with_suffix(".json")
  for f in (npz, meta):
    if not f.is_file():
      raise IcmhError(f"golden file not found: {f}")
  # Each family module defines check(npz_path, json_path) -> GoldenReport.
  report = importlib.import_module(f"icmh_jax.golden.{args.family}").check(npz, meta)
  report.print()
  return 0 if report.passed else 1
