"""glibc malloc settings every icmh-jax command runs with: transparent huge pages for malloc.

Why: XLA's CPU runtime allocates its large buffers per execution from its worker threads. glibc
serves a request larger than a thread arena's heap (64 MiB) with a fresh `mmap` whatever
`M_MMAP_MAX` says, and unmaps it on free, so every step faults its buffers in again, 4 KiB at a
time. Measured on a 2-vCPU AMD EPYC VM (Linux 6.18, glibc 2.36, THP "madvise"), LIC-TCM N=64
train step at batch 8 x 256²: 3.15 M minor faults and 10 s of system time per 23 s step; with
`glibc.malloc.hugetlb=1` (glibc >= 2.35 madvises its mmapped chunks and heap for huge pages)
35 k faults, 3.4 s and 18.8 s, float results unchanged. A 4096² matmul: 2.2 s -> 1.3 s.

The tunable is read when a process starts, so a command that lacks it runs itself again with it
(`reexec`, first thing in each command's `main` when called from the command line; child
processes inherit it, the PyTorch reference of `--torch-reference` too, so side-by-side timings
compare under one environment). `ICMH_NO_MALLOC_OPTIONS=1` leaves the environment alone;
a `glibc.malloc.hugetlb` the user sets in GLIBC_TUNABLES wins. Library use (`import icmh_jax`)
changes nothing: set GLIBC_TUNABLES=glibc.malloc.hugetlb=1 yourself there.
"""

import os
import platform
import sys

TUNABLE = ("glibc.malloc.hugetlb", "1")
_OFF = "ICMH_NO_MALLOC_OPTIONS"
_DONE = "ICMH_MALLOC_OPTIONS_SET"  # set on the exec: never a second one, whatever glibc does


def environment(env, libc: str) -> dict | None:
  """The environment a command should run under, or None when `env` needs no change.

  Args:
    env: the current environment (a mapping).
    libc: `platform.libc_ver()[0]` ("glibc" where the tunable exists).
  """
  if libc != "glibc" or env.get(_OFF, "").strip() not in ("", "0") or _DONE in env:
    return None
  given = env.get("GLIBC_TUNABLES", "")
  if any(t.split("=", 1)[0] == TUNABLE[0] for t in given.split(":") if t):
    return None
  return {**env, _DONE: "1", "GLIBC_TUNABLES": ":".join(filter(None, [given, "=".join(TUNABLE)]))}


def reexec() -> None:
  """Replaces this process by the same command line under `environment` when it differs."""
  env = environment(os.environ, platform.libc_ver()[0])
  if env is None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, sys.orig_argv, env)
