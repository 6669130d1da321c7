"""The `icmh` console entry point: one subcommand per module of this package.

Each command module defines `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`, and
imports heavy libraries inside `run` so that `icmh --help` stays fast. Exit codes: 0 success,
1 a failure the library reported (`IcmhError`, one line on stderr), 2 a usage error.
"""

import argparse
import importlib
import sys

from icmh_jax import compilation_cache, malloc_options
from icmh_jax.errors import IcmhError

# Module names under icmh_jax.cli, in the order `icmh --help` lists them.
COMMANDS = (
    "encode",
    "decode",
    "info",
    "params",
    "bench",
    "convert",
    "golden_check",
)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="icmh", description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  for mod in (importlib.import_module(f"icmh_jax.cli.{name}") for name in COMMANDS):
    p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
    mod.add_arguments(p)
    p.set_defaults(_run=mod.run)
  return parser


def read_icmh(path) -> tuple[bytes, dict]:
  """(file bytes, `scalable.describe` of them); an unreadable or malformed file is an IcmhError."""
  from icmh_jax.models import scalable
  try:
    data = path.read_bytes()
  except OSError as e:
    raise IcmhError(f"cannot read {path}: {e.strerror or e}") from e
  return data, scalable.describe(data)


def main(argv=None) -> int:
  if argv is None:  # run from the command line
    malloc_options.reexec()
  args = build_parser().parse_args(argv)
  compilation_cache.enable()
  try:
    return int(args._run(args) or 0)
  except IcmhError as e:
    print(f"icmh {args.command}: error: {e}", file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
