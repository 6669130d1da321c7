"""XLA options icmh-jax sets for its users (applied when `icmh_jax` is imported, before JAX
starts its backend; a flag the user already gives in `XLA_FLAGS` wins).

`--xla_llvm_disable_expensive_passes=true`: the CPU compile of the train step spends most of its
time in LLVM's optimisation of the elementwise fusions. Without the expensive passes the
synthesis transform's gradient compiled in 10.8 s instead of 17.7 s and ran as fast (2.86 vs
2.82 s; convolutions and matmuls are library calls, untouched). Float results are unchanged: no
fast-math is enabled, so no reassociation.

`--xla_backend_optimization_level=1` (LLVM -O1 instead of -O3 for the fused elementwise
kernels): the LIC-TCM N=64 train step compiled in 42.3 s instead of 54.7 s, its step as fast
(19.2 vs 18.5-18.8 s at batch 8 x 256²; at 2 x 128², 43.1 vs 50.4 s compile and 1.34 vs 1.35 s
per step) and the same loss to the last bit (idle 2-vCPU AMD EPYC, 2026-12-05). Level 0 halves
the compile but makes the step 1.7x slower; level 2 compiles in 45.7 s.

Training commands also run CPU computations inline (`inline_cpu_dispatch`, JAX's
`jax_cpu_enable_async_dispatch=False`): dispatched asynchronously, a step runs on a worker thread,
and XLA allocates its temporaries there, from a glibc thread arena whose heaps hold at most
64 MiB, so every buffer larger than that is mmapped and unmapped again each step and the kernel
zeroes its pages anew (`perf`: `clear_page_erms` 13 % of a steady LIC-TCM N=64 step, 3-5 s of
system time per step). Inline, the step allocates from the calling thread's main heap, which
keeps its memory between steps (`malloc_options`; the GIL is released while it runs, so
input threads go on): N=64 step 16.3-16.6 s instead of 17.6-20.2 s,
system time 0.7-1.2 s instead of 3.0-5.5 s, the same loss to the last bit (idle 2-vCPU AMD EPYC,
2026-12-05, ours alone). Encode and decode keep JAX's default: inline, their times stayed
within the run-to-run spread (BENCHMARKS.md).

Training commands also leave convolutions out of YNNPACK (`for_training`:
`--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce`, i.e. without
`individual_convolution`), and `layers/conv.py` then takes the filter gradient from XLA's own
convolution instead of its row-patch matmuls (`ynn_convolutions`). Where the backward's time
went (idle 2-vCPU Xeon with AMX, 2026-12-05): a 128 -> 128 3x3 filter gradient at 8 x 128² took
0.34 s as row patches, 0.50 s as XLA's convolution in YNNPACK, 0.14 s in XLA's own (Eigen)
convolution and 0.13 s in PyTorch's oneDNN, while forward and input gradient run as fast either
way (0.105-0.109 s). LIC-TCM N=64 train step, cache off, ours alone: 12.18 s instead of 13.15 s,
compile + first step 44.3 s instead of 55.9 s, peak RSS 13.1 instead of 12.3 GB. Encode and
decode kept YNNPACK's convolutions then (without them the N=64 decode's synthesis took 0.98-1.01 s
instead of 0.88-0.95 s on the same host).

Everything else (encode, decode, evaluation, benchmarks of the codec) runs without YNNPACK's
fusions (`--xla_cpu_experimental_ynn_fusion_type=`, replaced by the training value in a training
process): their first run in a process prepares each fusion, about 0.7 s of a tiny FR-ICMH's
first encode in a new `icmh encode` (2.12-2.26 s instead of 1.52 s, its later encodes 0.62-0.64
against 0.68 s), and at LIC-TCM N=64 / N=128 the steady encode and decode were within their
spread or faster without them (`icmh bench codec`, 5 runs, alternating: N=128 decode 2.94 / 2.88 s
against 3.68 / 3.22 s with them; idle 2-vCPU AMD EPYC Zen 5, 2026-12-07, ours alone). The files
are the same bytes either way; decoded pixels differ by at most 1 in 8 bits at 0.003 % of them.

All these flags were measured on the CPU only, and XLA applies them to every backend in the
process (the GPU's kernels are LLVM-compiled too), so they are set only where JAX will compute on
the CPU: `JAX_PLATFORMS` names cpu first, or it is unset and no accelerator plugin is installed
(`jax_plugins.*`, e.g. the CUDA plugin, or libtpu). On an H100 (jax 0.11.2, CUDA 13, 2026-12-05)
the N=64 train step did not get through its compile and three steps in 120 s either way, so
nothing says how they act there.

`ICMH_NO_XLA_OPTIONS=1` leaves XLA_FLAGS and the dispatch alone (convolutions stay in YNNPACK and
their filter gradients are row patches);
`JAX_CPU_ENABLE_ASYNC_DISPATCH=true` (or false) chooses the dispatch of the training commands.
"""

import importlib.util
import os
import pkgutil
import warnings

_OFF = "ICMH_NO_XLA_OPTIONS"
_YNN = "--xla_cpu_experimental_ynn_fusion_type"
OPTIONS = {"--xla_llvm_disable_expensive_passes": "true", "--xla_backend_optimization_level": "1",
           _YNN: ""}  # no YNNPACK fusions outside training (see above)
TRAINING_OPTIONS = {_YNN: "dot,eltwise,reduce"}  # YNNPACK keeps dots, elementwise ops, reductions
_ADDED = {}  # flag -> the value `apply` added (a later `apply` may replace it; a user's flag stays)


def apply(options: dict = OPTIONS) -> str:
  """Adds `options` missing from `XLA_FLAGS` where JAX computes on the CPU (`computes_on_cpu`);
  returns the resulting value."""
  flags = os.environ.get("XLA_FLAGS", "")
  if _disabled() or not computes_on_cpu():
    return flags
  replace = {k for k, v in options.items() if k in _ADDED and f"{k}={_ADDED[k]}" in flags.split()}
  kept = [f for f in flags.split() if f.split("=", 1)[0] not in replace]
  given = {f.split("=", 1)[0] for f in kept}
  extra = [f"{k}={v}" for k, v in options.items() if k not in given]
  _ADDED.update(f.split("=", 1) for f in extra)
  if extra or replace:
    os.environ["XLA_FLAGS"] = " ".join([*kept, *extra]).strip()
  return os.environ.get("XLA_FLAGS", "")


def accelerator_plugins() -> list[str]:
  """The JAX accelerator plugins installed (found without importing jax)."""
  try:
    import jax_plugins  # the namespace package JAX discovers its PJRT plugins in
    found = sorted(m.name for m in pkgutil.iter_modules(jax_plugins.__path__))
  except ImportError:
    found = []
  return found + (["libtpu"] if importlib.util.find_spec("libtpu") else [])


def computes_on_cpu() -> bool:
  """Whether JAX will compute on the CPU: `JAX_PLATFORMS` names cpu first, or it is unset and
  `accelerator_plugins()` finds none."""
  platforms = os.environ.get("JAX_PLATFORMS", "").strip().lower()
  if platforms:
    return platforms.split(",")[0].strip() == "cpu"
  return not accelerator_plugins()


def ynn_convolutions() -> bool:
  """Whether XLA's CPU backend runs convolutions in YNNPACK, by `XLA_FLAGS` (its default: yes)."""
  for flag in reversed(os.environ.get("XLA_FLAGS", "").split()):
    name, _, value = flag.partition("=")
    if name == _YNN:
      return "individual_convolution" in value.split(",")
  return True


def for_training() -> bool:
  """For a training process, before JAX starts its backend: adds `TRAINING_OPTIONS` (see the
  module docstring; a value the user gives wins, none with `ICMH_NO_XLA_OPTIONS`) and runs CPU
  computations inline (`inline_cpu_dispatch`). Returns whether they run inline."""
  from jax._src import xla_bridge
  if not xla_bridge.backends_are_initialized():
    apply(TRAINING_OPTIONS)
  elif not _disabled() and computes_on_cpu() and ynn_convolutions():
    warnings.warn("JAX's backend started before icmh_jax could take convolutions out of YNNPACK "
                  "for training; the step computes filter gradients as row patches")
  return inline_cpu_dispatch()


def inline_cpu_dispatch() -> bool:
  """For a training process, before JAX starts its backend: CPU computations run on the calling
  thread (see the module docstring), unless `JAX_CPU_ENABLE_ASYNC_DISPATCH` says otherwise (JAX
  itself does not read that variable; this function does) or `ICMH_NO_XLA_OPTIONS` is set.
  Returns whether they run inline (now)."""
  import jax
  from jax._src import xla_bridge
  name = "jax_cpu_enable_async_dispatch"
  user = os.environ.get(name.upper(), "").strip().lower()
  if not user and _disabled():
    return not jax.config.read(name)
  asynchronous = bool(user) and user not in ("0", "false", "no", "off")
  if not xla_bridge.backends_are_initialized():
    jax.config.update(name, asynchronous)
  elif jax.config.read(name) != asynchronous and jax.default_backend() == "cpu":
    warnings.warn(f"JAX's backend started before icmh_jax could set {name}={asynchronous}; "
                  f"it stays {jax.config.read(name)}")
  return not jax.config.read(name)


def _disabled() -> bool:
  return os.environ.get(_OFF, "").strip() not in ("", "0")
