"""XLA options icmh-jax sets for its users (applied when `icmh_jax` is imported, before JAX
starts its backend; a flag the user already gives in `XLA_FLAGS` wins).

`--xla_llvm_disable_expensive_passes=true`: the CPU compile of the train step spends most of its
time in LLVM's optimisation of the elementwise fusions. Without the expensive passes the
synthesis transform's gradient compiled in 10.8 s instead of 17.7 s and ran as fast (2.86 vs
2.82 s; convolutions and matmuls are library calls, untouched). Float results are unchanged: no
fast-math is enabled, so no reassociation. `ICMH_NO_XLA_OPTIONS=1` leaves XLA_FLAGS alone.
"""

import os

OPTIONS = {"--xla_llvm_disable_expensive_passes": "true"}


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
