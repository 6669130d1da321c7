"""Trains one ICMH system.

  python train.py --config configs/fr_icmh.py:na=4,lam=0.01 --workdir runs/fr4_001
  python train.py --config configs/sa_icm.py:tiny --workdir runs/sa_icm_tiny
  python train.py --config configs/tcm.py --config.optim.lr=5e-5 --workdir runs/tcm --jax_distributed

`--config.a.b=VALUE` overrides a field of the (locked) config (`icmh_jax.config_files.load`).
Re-running the same command resumes from the workdir's latest checkpoint.
"""

import sys

from absl import app, flags, logging

from icmh_jax import compilation_cache, config_files, malloc_options, xla_options

_CONFIG = flags.DEFINE_string("config", None, "config file (configs/<family>.py:knobs)")
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints and logs")
_DISTRIBUTED = flags.DEFINE_bool("jax_distributed", False,
                                 "call jax.distributed.initialize() first (multi-host runs)")
flags.mark_flags_as_required(["config", "workdir"])


def main(args):
  argv, overrides = args
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from icmh_jax.errors import ConfigError
  try:
    config = config_files.load(_CONFIG.value, overrides)
  except ConfigError as e:
    print(f"train: error: {e}", file=sys.stderr)
    return 1
  compilation_cache.enable()
  xla_options.for_training()
  import jax
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  from icmh_jax.train import loop
  logging.info("process %d/%d, devices %s", jax.process_index(), jax.process_count(),
               jax.devices())
  loop.train_and_evaluate(config, _WORKDIR.value)
  return 0


if __name__ == "__main__":
  malloc_options.reexec()
  app.run(main, flags_parser=config_files.parse_flags)
