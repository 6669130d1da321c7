"""Training runs that are reused when finished: what `make demo` and `make study` train through.

`train(config, workdir)` trains unless `workdir` already holds the final step of the same config
(then it says so and returns at once); a run started with another config is started again from
scratch, and an unfinished run with the same config resumes from its checkpoint. The config, the
config of the frozen base under it and, for a fine-tune (`init_from`), the stamp and steps of the
run it starts from are stamped as `run_config.json` in the workdir.
"""

import json
import os
import shutil
import sys
import time

from icmh_jax import config_files


def say(tag: str, msg: str) -> None:
  print(f"[{tag}] {msg}", file=sys.stderr, flush=True)


def load_config(family: str, arg: str, **overrides):
  """configs/<family>.py:arg with dotted overrides (as `--config.a.b=v` would)."""
  return config_files.load(config_files.family_spec(family, arg), overrides)


def finished(workdir: str, total: int) -> bool:
  from icmh_jax import params_io
  return total in params_io.step_dirs(os.path.join(workdir, "checkpoints"))


# Config keys that change how a step is computed, not what it computes (the gradients are the
# same): a run stamped with other values, or before the key existed, is the same run.
EXECUTION_ONLY = ("remat", "remat_scope")


def _what_trains(stamp) -> dict | None:
  """A run stamp without its EXECUTION_ONLY keys (in the config and in the base's config)."""
  if not isinstance(stamp, dict):
    return stamp
  return {k: {kk: vv for kk, vv in v.items() if kk not in EXECUTION_ONLY}
          if isinstance(v, dict) else v for k, v in stamp.items()}


def _read_stamp(workdir: str) -> dict | None:
  """A workdir's `run_config.json`, None when it has none."""
  stamp = os.path.join(workdir, "run_config.json")
  if not os.path.exists(stamp):
    return None
  with open(stamp) as f:
    return json.load(f)


def _init_identity(init_from: str) -> dict:
  """What a fine-tune starts from: the init run's stamp (without EXECUTION_ONLY keys) and its
  finished steps. Its own path stays the same when that run is trained again with other settings,
  so the path alone would let a stale fine-tune be reused."""
  from icmh_jax import params_io
  return {"stamp": _what_trains(_read_stamp(init_from)),
          "steps": params_io.step_dirs(os.path.join(init_from, "checkpoints"))}


def train(config, workdir: str, label: str, base=None, tag: str = "run") -> tuple[float, bool]:
  """Trains `config` in `workdir` unless it is finished there; returns (seconds, reused).

  Args:
    config: a run config (`configs/*.py`).
    workdir: the run's folder.
    label: how progress lines name the run.
    base: the config of the frozen SA-ICM under a human-layer run (part of what must match).
    tag: the progress lines' prefix ("demo", "study").
  """
  from icmh_jax import params_io
  from icmh_jax.train import loop
  total = int(config.schedule.total_steps)
  stamp = os.path.join(workdir, "run_config.json")
  wanted = params_io.plain_json({"config": config, "base": base})
  if config.get("init_from"):
    wanted["init"] = _init_identity(config.init_from)
  saved = _read_stamp(workdir)
  if os.path.isdir(workdir) and _what_trains(saved) != _what_trains(wanted):
    say(tag, f"{label}: {workdir} holds a run with another config; starting it again")
    shutil.rmtree(workdir)
  elif finished(workdir, total):
    say(tag, f"{label}: reusing the finished run in {workdir} (step {total})")
    return 0.0, True
  elif os.path.isdir(workdir):
    say(tag, f"{label}: resuming the unfinished run in {workdir}")
  say(tag, f"{label}: training {total} steps in {workdir}")
  _keep_one_system(config)
  os.makedirs(workdir, exist_ok=True)
  with open(stamp, "w") as f:
    json.dump(wanted, f, indent=1)
  t = time.perf_counter()
  loop.train_and_evaluate(config, workdir)
  return time.perf_counter() - t, False


_last_system = [None]  # the system (name and model config) whose steps this process holds


def _keep_one_system(config) -> None:
  """Releases the compiled steps of the previous run when this one trains another system.

  Runs of one system (the λ of a curve) share its compiled step; a study trains seven systems in
  one process, and keeping all of their programs alive crashed it at the end (Linux's mappings
  per process, `step.release_compiled`)."""
  from icmh_jax import params_io
  from icmh_jax.train import step
  key = json.dumps(params_io.plain_json({"system": config.system, "model": config.model}),
                   sort_keys=True)
  if _last_system[0] not in (None, key):
    step.release_compiled()
  _last_system[0] = key


def read_metrics(workdir: str) -> list[dict]:
  """The records of the run's `metrics.jsonl` (one dict per logged step, in order)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
