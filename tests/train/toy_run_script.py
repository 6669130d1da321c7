"""Run by test_loop.py: trains the toy system on the bundled photos; may SIGKILL itself.

usage: toy_run_script.py WORKDIR DATA_DIR TOTAL_STEPS [KILL_AFTER_LOGGING_STEP]
"""

import os
import pathlib
import signal
import sys

sys.path[:0] = [str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parents[2])]
from toy_system import ToySystem  # noqa: E402

from configs import sa_icm  # noqa: E402
from icmh_jax.train import loop, metrics_writer  # noqa: E402


def toy_run_config(data_dir, total_steps):
  c = sa_icm.get_config("tiny")  # mask "edges": the edge maps flow through the loss
  c.data.dir, c.data.crop, c.data.batch_size = data_dir, 32, 2
  c.optim.lr = 1e-2
  c.schedule.total_steps, c.schedule.milestones = total_steps, (total_steps - 2,)
  c.log_every, c.ckpt_every, c.eval_every, c.keep_ckpts = 1, 3, 4, 2
  c.eval.num_batches, c.eval.compress_images = 1, 0
  return c


if __name__ == "__main__":
  workdir, data_dir, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
  if len(sys.argv) > 4:
    kill_at, write = int(sys.argv[4]), metrics_writer.MetricsWriter.write_scalars

    def write_then_die(self, step, mapping):
      write(self, step, mapping)
      if step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    metrics_writer.MetricsWriter.write_scalars = write_then_die
  loop.train_and_evaluate(toy_run_config(data_dir, total), workdir, system=ToySystem())
