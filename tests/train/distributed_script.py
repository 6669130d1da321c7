"""Run by test_distributed.py: one of NUM_PROCESSES jax.distributed processes training the toy.

usage: distributed_script.py PROCESS_ID NUM_PROCESSES PORT WORKDIR DATA_DIR TOTAL_STEPS
(NUM_PROCESSES=1 trains alone, without jax.distributed, as the reference.)
"""

import json
import pathlib
import sys

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent),
                str(pathlib.Path(__file__).resolve().parents[2])]

import jax  # noqa: E402

pid, n, port, workdir, data_dir, total = sys.argv[1:7]
if int(n) > 1:
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=int(n),
                             process_id=int(pid))

from toy_run_script import toy_run_config  # noqa: E402
from toy_system import ToySystem  # noqa: E402

from icmh_jax.train import loop  # noqa: E402

config = toy_run_config(data_dir, int(total))
config.ckpt_every = 3
out = loop.train_and_evaluate(config, workdir, system=ToySystem())
print(json.dumps(dict(process=jax.process_index(), count=jax.process_count(),
                      devices=jax.device_count(), metrics=out)))
