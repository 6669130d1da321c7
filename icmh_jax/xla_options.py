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

`ICMH_NO_XLA_OPTIONS=1` leaves XLA_FLAGS alone.
"""

import os

OPTIONS = {"--xla_llvm_disable_expensive_passes": "true", "--xla_backend_optimization_level": "1"}


def apply() -> str:
  """Adds `OPTIONS` missing from `XLA_FLAGS`; returns the resulting value."""
  flags = os.environ.get("XLA_FLAGS", "")
  if os.environ.get("ICMH_NO_XLA_OPTIONS", "").strip() not in ("", "0"):
    return flags
  given = {f.split("=", 1)[0] for f in flags.split()}
  extra = [f"{k}={v}" for k, v in OPTIONS.items() if k not in given]
  if extra:
    os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()
  return os.environ.get("XLA_FLAGS", "")
