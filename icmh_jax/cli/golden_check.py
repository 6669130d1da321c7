"""`icmh golden-check NAME PATH.npz`: compare a port with a PyTorch golden set (JSON beside the npz).

A set that lacks an array or a JSON field the checker needs is one line on stderr and exit 1
(`icmh_jax.golden.sets`); arrays the set lists under `omitted_arrays` are derived as it says.
"""

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
  from icmh_jax.golden.sets import GoldenSetError
  # Each family module defines check(npz_path, json_path) -> GoldenReport.
  checker = importlib.import_module(f"icmh_jax.golden.{args.family}")
  try:
    report = checker.check(npz, meta)
  except KeyError as e:  # a checker reading a field the set lacks without `golden.sets`
    raise GoldenSetError(f"golden set {npz} lacks {e}; it does not fit the "
                         f"'{args.family}' checker") from e
  report.print()
  return 0 if report.passed else 1
