"""`icmh bench TARGET`: benchmarks on one harness (icmh_jax.benchmarks.harness), JSON on request.

Each target module `icmh_jax.benchmarks.<target>` defines `HELP`, `add_arguments(parser)` and
`run(args) -> dict` (its results), and may define `prepare()`, run before JAX starts its backend;
this command adds the machine description and prints.
"""

import importlib
import json
import sys

from icmh_jax.benchmarks import harness

NAME = "bench"
HELP = "benchmarks: codec, train, entropy, sam (median of k runs, compile time apart)"
TARGETS = ("codec", "train", "entropy", "sam")


def add_arguments(p):
  sub = p.add_subparsers(dest="target", required=True, metavar="TARGET")
  for target in TARGETS:
    mod = importlib.import_module(f"icmh_jax.benchmarks.{target}")
    t = sub.add_parser(target, help=mod.HELP, description=mod.HELP)
    mod.add_arguments(t)
    t.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported")
    t.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    t.set_defaults(_bench=mod.run, _prepare=getattr(mod, "prepare", None))


def run(args) -> int:
  if args._prepare:
    args._prepare()
  before = dict(harness.machine_info(), busy_cores=harness.busy_cores())
  doc = harness.report(args.target, args._bench(args), before)
  if args.json:
    print(json.dumps(doc, indent=2, default=float))
  else:
    m = doc["machine"]
    print(f"bench {args.target} on {m['cpu']} ({m['cores']} cores, load {m['load_avg'][0]:.2f}), "
          f"devices {', '.join(m['devices'])}")
    print("  versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    for key, value in doc["results"].items():
      print(f"  {key}: {value}")
  for note in doc["notes"]:
    print(f"icmh bench: note: {note}", file=sys.stderr)
  return 0
