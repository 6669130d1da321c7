"""The training loop: `train_and_evaluate(config, workdir)` — mesh, data, state, restore, loop.

One code path from one CPU to many hosts: the state is replicated over a 1-D "data" mesh, each
process feeds its share of the global batch, and Orbax checkpoints hold params, both optimiser
states, step, RNG and the data iterator, so a killed run resumes where it stopped.
"""

import contextlib
import logging
import math
import sys
import time

import jax
import numpy as np

from icmh_jax import params_io
from icmh_jax.data import bundled, pipeline, sam_edges
from icmh_jax.models import config as model_config
from icmh_jax.train import checkpoint, metrics_writer, optim, step as step_lib

log = logging.getLogger(__name__)


def every(step: int, n: int) -> bool:
  """True every `n` steps (never when n <= 0)."""
  return n > 0 and step % n == 0


class Timers:
  """Seconds spent per phase (`with timers("eval"): ...`), reported as `time/<phase>`."""

  def __init__(self):
    self.total = {}

  @contextlib.contextmanager
  def __call__(self, name):
    t = time.perf_counter()
    yield
    self.total[name] = self.total.get(name, 0.0) + time.perf_counter() - t


def load_sources(config):
  """(train, validation) random-access sources: the bundled photos or a written edge-map set."""
  d = config.data
  if d.name == "bundled":
    if jax.process_index() == 0:
      bundled.prepare(d.dir, d.mask_source, sam_checkpoint=d.get("sam_checkpoint", ""))
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices("bundled data prepared")
    return tuple(pipeline.CachedSource(bundled.load(d.dir, s, d.mask_source))
                 for s in ("train", "validation"))
  return tuple(sam_edges.load_split(d.dir, d.name, s) for s in ("train", "validation"))


def abstract_state(system, config, mesh):
  """The TrainState's shapes, dtypes and (replicated) shardings, without computing anything."""
  shape = (1, config.data.crop, config.data.crop, 3)
  fn = lambda key: optim.create_train_state(system.init(key, shape), system.trainable_key())
  repl = step_lib.replicated(mesh)
  abstract = jax.eval_shape(fn, jax.random.key(0))
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=repl), abstract)


def fresh_params(system, config):
  """Random params; the frozen base of a human-layer system comes from `config.base_checkpoint`."""
  shape = (1, config.data.crop, config.data.crop, 3)
  # Eager on one local device: compiling the whole init costs more than running it op by op.
  params = jax.device_get(system.init(jax.random.key(config.seed), shape))
  if system.trainable_key() != "base":
    if not config.base_checkpoint:
      log.warning("config.base_checkpoint is empty: the frozen base stays RANDOM")
    else:
      same = {k: config.model[k] for k in ("N_machine", "M", "num_slices_m", "slice_width")
              if k in config.model}
      # Stored meta may predate a field's rename: compare it in today's names.
      meta = model_config.upgrade_meta(params_io.read_meta(config.base_checkpoint))
      params_io.check_meta(meta, {"model": same}, config.base_checkpoint)
      base, _ = params_io.load_params(config.base_checkpoint, like={"base": params["base"]})
      params["base"] = base["base"]
  return params


def restore_or_init(mngr, system, config, mesh):
  """(state, rng, data_state) to start from."""
  abstract = abstract_state(system, config, mesh)
  repl = step_lib.replicated(mesh)
  # Restore order: the latest checkpoint in the workdir, else config.init_from, else a fresh init.
  latest = mngr.latest_step()
  if latest is not None:
    state, key_data, data_state = checkpoint.restore_state(mngr, latest, abstract)
    state = state.replace(step=step_lib.replicate(state.step, mesh))
    return state, jax.random.wrap_key_data(step_lib.replicate(key_data, mesh)), data_state
  if config.init_from:
    params, _ = params_io.load_params(config.init_from, like=abstract.params)
  else:
    params = fresh_params(system, config)
  create = jax.jit(lambda p: optim.create_train_state(p, system.trainable_key()),
                   out_shardings=repl)
  state = create(step_lib.replicate(params, mesh))
  key_data = jax.device_get(jax.random.key_data(jax.random.key(config.seed + 1)))
  return state, jax.random.wrap_key_data(step_lib.replicate(key_data, mesh)), None


def global_batch(local: dict, sharding):
  """This process's batch -> one global array per feature, sharded over "data": THE host-to-device
  copy of the loop (allowed here; everywhere else the transfer guard refuses hidden copies)."""
  with jax.transfer_guard("allow"):
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local.items()}


def summarize(pending, step: int, first: int, seconds: float, batch_size: int) -> dict:
  """Means of the metrics of steps first+1..step; a non-finite loss raises with that range."""
  fetched = jax.device_get(pending)
  losses = [float(m["loss"]) for m in fetched]
  if not all(math.isfinite(v) for v in losses):
    bad = first + 1 + next(i for i, v in enumerate(losses) if not math.isfinite(v))
    raise FloatingPointError(f"non-finite loss in steps {first + 1}..{step} (first at {bad})")
  out = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0] if k != "lr"}
  n = step - first
  out.update(lr=float(fetched[-1]["lr"]), steps_per_s=n / seconds,
             images_per_s=n * batch_size / seconds)
  return out


def evaluate(eval_step, system, params, val_source, config, batch_sharding) -> dict:
  """Eval-mode estimate over `config.eval.num_batches` validation batches (keys `val/...`), plus
  real bitstream rates `val/bpp_file` of the first `config.eval.compress_images` crops."""
  ds = pipeline.eval_dataset(val_source, crop=config.data.crop,
                             global_batch=config.data.batch_size,
                             process_index=jax.process_index(),
                             process_count=jax.process_count())
  it = iter(ds)
  fetched = jax.device_get([eval_step(params, global_batch(next(it), batch_sharding))
                            for _ in range(config.eval.num_batches)])
  out = {f"val/{k}": float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
  n = config.eval.compress_images
  if n and jax.process_index() == 0:
    # Range coding is host work: its copies to and from the device are intended.
    with jax.transfer_guard("allow"):
      out.update(file_rate(system, jax.device_get(params), val_source, n, config.data.crop))
  return out


def file_rate(system, params, val_source, n: int, crop: int) -> dict:
  """`val/bpp_file`: 8 * bytes / pixels of real `.icmh` files of the first `n` validation crops."""
  rates = []
  for i in range(min(n, len(val_source))):
    x = pipeline.center_crop(val_source[i], crop)["image"] / np.float32(255)
    rates.append(8 * len(system.compress(params, x)) / (x.shape[0] * x.shape[1]))
  return {"val/bpp_file": float(np.mean(rates))}


def train_and_evaluate(config, workdir: str, *, system=None) -> dict:
  """Trains `config.system` in `workdir` until `config.schedule.total_steps`, resuming if it can.

  Args:
    config: a run config (`configs/*.py`).
    workdir: where checkpoints, `metrics.jsonl` and TensorBoard logs go.
    system: the System to train; default `registry.get_system(config.system, config.model)`.

  Returns:
    The last logged metrics (plus the last validation metrics).
  """
  if system is None:
    from icmh_jax.models import registry
    system = registry.get_system(config.system, config.model)
  mesh = step_lib.make_mesh()
  timers = Timers()
  with timers("setup"):
    train_source, val_source = load_sources(config)
    mngr = checkpoint.make_manager(workdir, keep=config.keep_ckpts)
    state, rng, data_state = restore_or_init(mngr, system, config, mesh)
  total = int(config.schedule.total_steps)
  start = int(jax.device_get(state.step))
  meta = {"system": config.system, "model": config.model, "config": config}
  writer = metrics_writer.MetricsWriter(workdir, resume_step=start,
                                        enabled=jax.process_index() == 0)
  ds = pipeline.train_dataset(train_source, crop=config.data.crop,
                              global_batch=config.data.batch_size, seed=config.data.shuffle_seed,
                              process_index=jax.process_index(),
                              process_count=jax.process_count())
  train_iter = iter(ds)
  if data_state is not None:
    train_iter.set_state(data_state)
  train_step = step_lib.make_train_step(mesh, system=system, config=config)
  eval_step = step_lib.make_eval_step(mesh, system=system, config=config)
  sharding = step_lib.batch_sharding(mesh)
  bar = _progress(start, total)
  last, val, pending, first, t0 = {}, {}, [], start, time.perf_counter()
  with jax.transfer_guard("disallow"):
    for step in range(start + 1, total + 1):
      with timers("data"):
        batch = global_batch(next(train_iter), sharding)
      with timers("train"):
        state, metrics = train_step(state, batch, rng)
      pending.append(metrics)
      if every(step, config.log_every) or step == total:
        with timers("train"):  # the fetch waits for the dispatched steps: count it as training
          pending = jax.device_get(pending)
        last = summarize(pending, step, first, time.perf_counter() - t0, config.data.batch_size)
        writer.write_scalars(step, {**last, **{f"time/{k}": v for k, v in timers.total.items()}})
        bar.update(step - first)
        bar.set_postfix(loss=f"{last['loss']:.4g}")
        pending, first, t0 = [], step, time.perf_counter()
      evaluated = every(step, config.eval_every) or step == total
      if evaluated:
        with timers("eval"):
          val = evaluate(eval_step, system, state.params, val_source, config, sharding)
        writer.write_scalars(step, val)
      if every(step, config.ckpt_every) or step == total:
        with timers("checkpoint"):
          best = {"val_loss": val["val/loss"]} if evaluated else None
          checkpoint.save_state(mngr, state, rng, train_iter.get_state(), meta, best)
  mngr.wait_until_finished()
  bar.close()
  writer.close()
  return {**last, **val}


def _progress(start, total):
  from tqdm import tqdm
  return tqdm(total=total, initial=start, desc="train", unit="step", file=sys.stderr,
              disable=jax.process_index() != 0, dynamic_ncols=True)
