"""Trains one ICMH system.

  python train.py --config configs/fr_icmh.py:na=4,lam=0.01 --workdir runs/fr4_001
  python train.py --config configs/sa_icm.py:tiny --workdir runs/sa_icm_tiny
  python train.py --config configs/tcm.py --config.optim.lr=5e-5 --workdir runs/tcm --jax_distributed

Re-running the same command resumes from the workdir's latest checkpoint.
"""

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file (configs/<family>.py:knobs)",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints and logs")
_DISTRIBUTED = flags.DEFINE_bool("jax_distributed", False,
                                 "call jax.distributed.initialize() first (multi-host runs)")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  import jax
  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  from icmh_jax.train import loop
  logging.info("process %d/%d, devices %s", jax.process_index(), jax.process_count(),
               jax.devices())
  loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
