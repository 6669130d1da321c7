"""The one benchmark harness behind `icmh bench`: warm-up excluded, compile time reported apart,
median of k timed runs, machine and library versions recorded, JSON-serialisable results."""

import contextlib
import dataclasses
import os
import platform
import statistics
import time
from typing import Any, Callable


@dataclasses.dataclass
class Timing:
  """Seconds per call of one timed function."""
  name: str
  median_s: float
  runs_s: list[float]
  first_call_s: float | None = None  # includes jit compilation when the function is jitted

  def as_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def block(x):
  """Waits for every array in a pytree (JAX dispatch is asynchronous)."""
  import jax
  return jax.block_until_ready(x)


def measure(name: str, fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> Timing:
  """Times `fn()` (which must block until its work is done; wrap JAX results with `block`).

  The first call is timed apart (it compiles), `warmup - 1` more calls are discarded, then the
  median of `repeats` calls is the figure.
  """
  if repeats < 1:
    raise ValueError(f"repeats must be >= 1, got {repeats}")
  first = None
  for i in range(max(warmup, 0)):
    t = time.perf_counter()
    fn()
    if i == 0:
      first = time.perf_counter() - t
  runs = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    runs.append(time.perf_counter() - t)
  return Timing(name, statistics.median(runs), runs, first)


# JAX's own timings of a jitted call's first run (jax._src.dispatch's event names).
_COMPILE_PHASES = {"/jax/core/compile/jaxpr_trace_duration": "trace_s",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
                   "/jax/core/compile/backend_compile_duration": "compile_or_load_s"}


@contextlib.contextmanager
def compile_phases():
  """Within: the seconds JAX reports for tracing, lowering to MLIR, and XLA's compile or its load
  from the persistent compilation cache, the longest of each (a nested jit's trace runs inside its
  caller's), in the yielded dict (trace_s, lower_s, compile_or_load_s; 0 for a phase that did not
  run: a call whose executable was already in memory)."""
  import jax
  phases = dict.fromkeys(_COMPILE_PHASES.values(), 0.0)

  def listen(event, duration, **_):
    if event in _COMPILE_PHASES:
      key = _COMPILE_PHASES[event]
      phases[key] = max(phases[key], duration)
  jax.monitoring.register_event_duration_secs_listener(listen)
  try:
    yield phases
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)


def digest(array) -> str:
  """A short fingerprint of an array's dtype, shape and bytes (sha256, 16 hex digits): what two
  processes compare to show they saw the same data."""
  import hashlib
  import numpy as np
  a = np.ascontiguousarray(array)
  h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
  h.update(a.tobytes())
  return h.hexdigest()[:16]


def peak_rss_bytes() -> int:
  """This process's peak resident set size: Linux's VmHWM (of this address space: a process
  spawned by one with a large RSS starts from zero, unlike getrusage's ru_maxrss, which a child
  inherits from its parent), else ru_maxrss."""
  import resource
  import sys
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return int(rss if sys.platform == "darwin" else rss * 1024)


def peak_memory() -> dict[str, Any]:
  """Peak memory of this process so far: host RSS (`peak_rss_bytes`, what the OOM killer counts)
  and, on accelerators, the device's `peak_bytes_in_use` (`peak_device_bytes`)."""
  import jax
  out = {"peak_rss_bytes": peak_rss_bytes()}
  stats = [d.memory_stats() or {} for d in jax.local_devices() if d.platform != "cpu"]
  if stats:
    out["peak_device_bytes"] = max(int(s.get("peak_bytes_in_use", 0)) for s in stats)
  return out


def machine_info() -> dict[str, Any]:
  """Where the numbers were measured: CPU, cores, load, devices and versions."""
  import importlib.metadata as md
  import jax
  versions = {}
  for pkg in ("jax", "jaxlib", "flax", "numpy", "constriction", "optax", "orbax-checkpoint",
              "torch"):
    try:
      versions[pkg] = md.version(pkg)
    except md.PackageNotFoundError:
      pass
  cpu = platform.processor() or platform.machine()
  isa = []
  try:
    with open("/proc/cpuinfo") as f:
      lines = f.readlines()
    cpu = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("model name")), cpu)
    flags = set(next((l.split(":", 1)[1].split() for l in lines if l.startswith("flags")), []))
    # The vector / matrix units that decide float32 and bfloat16 speed on x86.
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags]
  except OSError:
    pass
  # Usable cores, XLA flags, malloc tunables and the CPU dispatch mode change timings as much as
  # the CPU model does (forced devices, thread pinning, page faults): all are recorded, with the
  # kernel.
  usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return dict(cpu=cpu, isa=isa, cores=os.cpu_count(), usable_cores=usable, load_avg=os.getloadavg(),
              python=platform.python_version(), backend=jax.default_backend(),
              devices=[str(d) for d in jax.devices()], xla_flags=os.environ.get("XLA_FLAGS", ""),
              glibc_tunables=os.environ.get("GLIBC_TUNABLES", ""), kernel=platform.release(),
              cpu_async_dispatch=bool(jax.config.read("jax_cpu_enable_async_dispatch")),
              versions=versions)


def _cpu_jiffies() -> tuple[int, int] | None:
  """(busy, total) CPU time of the whole machine so far, from /proc/stat; None off Linux."""
  try:
    with open("/proc/stat") as f:
      fields = [int(v) for v in f.readline().split()[1:]]
  except (OSError, ValueError):
    return None
  idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
  return sum(fields[:8]) - idle, sum(fields[:8])  # guest time is already in user time


def busy_cores_between(before: tuple[int, int], after: tuple[int, int], cores: int) -> float:
  """Cores kept busy between two `_cpu_jiffies` readings."""
  busy, total = after[0] - before[0], after[1] - before[1]
  return cores * busy / total if total > 0 else 0.0


def busy_cores(window_s: float = 1.0) -> float | None:
  """Cores the rest of the machine keeps busy, measured over `window_s` while this process
  waits: unlike the 1-minute load average, it does not still count a command that just ended."""
  before = _cpu_jiffies()
  if before is None:
    return None
  time.sleep(window_s)
  return busy_cores_between(before, _cpu_jiffies(), os.cpu_count() or 1)


def busy_note(machine: dict[str, Any]) -> str | None:
  """A warning when other work keeps more than half the usable cores busy (timings then run
  3-10x slow on a shared box: DESIGN.md measures on an idle machine), else None. Judged by
  `busy_cores` when the machine record has it, else by the 1-minute load average."""
  cores = machine.get("usable_cores") or machine["cores"]
  busy = machine.get("busy_cores")
  if busy is not None:
    if busy > 0.5 * cores:
      return (f"machine busy ({busy:.2f} of {cores} usable cores kept busy by other work just "
              f"before the run): timings are not representative; rerun on an idle machine")
    return None
  load = machine["load_avg"][0]
  if load > 0.5 * cores:
    return (f"machine busy (load {load:.2f} on {cores} usable cores): timings are not "
            f"representative; rerun on an idle machine")
  return None


def report(target: str, results: dict[str, Any], before: dict[str, Any] | None = None
           ) -> dict[str, Any]:
  """The JSON document a benchmark prints: target, machine, results, notes (e.g. busy machine).

  `before`: `machine_info()` taken before the benchmark ran, with `busy_cores` if measured; it
  decides the busy note (the load after a run counts the benchmark's own threads)."""
  machine = machine_info()
  if before and before.get("busy_cores") is not None:
    machine["busy_cores_before"] = before["busy_cores"]
  notes = [n for n in (busy_note(before or machine),) if n]
  return dict(benchmark=target, machine=machine, results=results, notes=notes)
