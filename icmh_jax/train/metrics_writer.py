"""The one metric writer: `write_scalars(step, mapping)` to `metrics.jsonl` and TensorBoard.

Only process 0 writes. On resume from step s the JSONL file is cut back to the lines with
step <= s, so a run killed after its last checkpoint leaves no duplicate steps behind.
"""

import json
import math
import os
import time
from typing import Mapping

JSONL = "metrics.jsonl"


class MetricsWriter:
  """Writes scalars of one run (JSONL: one `{"step": s, key: value, ...}` object per line)."""

  def __init__(self, workdir: str, *, resume_step: int = 0, enabled: bool = True):
    self.enabled = enabled
    self.path = os.path.join(workdir, JSONL)
    self._tb = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    _truncate_after(self.path, resume_step)
    from tensorboardX import SummaryWriter
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write_scalars(self, step: int, mapping: Mapping[str, float]) -> None:
    """Appends one JSONL line and one TensorBoard scalar per key (values become floats)."""
    if not self.enabled:
      return
    values = {k: float(v) for k, v in mapping.items()}
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": int(step), "time": time.time(), **values}) + "\n")
    for k, v in values.items():
      if math.isfinite(v):
        self._tb.add_scalar(k, v, int(step))
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_scalars(workdir: str) -> list[dict]:
  """The JSONL records of a run, in order."""
  path = os.path.join(workdir, JSONL)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _truncate_after(path: str, step: int) -> None:
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = [l for l in f if l.strip()]
  keep = []
  for line in lines:
    try:
      if json.loads(line)["step"] <= step:
        keep.append(line)
    except (ValueError, KeyError):
      pass  # a line cut by a kill mid-write
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(keep)
  os.replace(tmp, path)
