"""glibc malloc settings every icmh-jax command runs with: heaps that keep what they got.

Why: XLA's CPU runtime allocates its large buffers per execution from its worker threads. glibc
serves a large request with a fresh `mmap` and unmaps it on free, so every step faults its
buffers in again, 4 KiB at a time, and the kernel zeroes each page. The tunables (`TUNABLES`): no
mmapped chunks (`mmap_max=0`), heaps that are not trimmed (`trim_threshold`: freed memory stays
for the next step), huge pages for them (`hugetlb=1`, glibc >= 2.35) and at most 8 arenas. A
request bigger than a thread arena's heap (64 MiB) is still mmapped whatever `M_MMAP_MAX` says;
one arena (`arena_max=1`) would avoid that, and did for a step whose executable came from the
compilation cache, but after a compile in the same process that one arena's heap is fragmented
and every thread queues on its lock (`_int_malloc` 20 % of samples, the cores idle 29 %).
Measured on a 2-vCPU AMD EPYC VM (Linux 6.18, glibc 2.36, THP "madvise"), LIC-TCM N=64 train
step, batch 8 x 256², 2026-12-05, per steady step, ours alone:

| GLIBC_TUNABLES | step, compiled in the process | step, from the cache | minor faults |
|---|---|---|---|
| none | | 22.7-23.3 s | 3.15 M |
| hugetlb=1 | | 18.4-19.2 s | 35 k |
| the three + arena_max=1 | 24.2-25.1 s | 16.3-17.0 s | 0 |
| the three + arena_max=8 (`TUNABLES`) | 19.3-19.9 s | 18.5-19.4 s | 12-38 k |

With arena_max=1 the study's tiny FR-ICMH loop ran at 0.9-1.0 steps/s after an in-process
compile (1.9 with arena_max=8 or without tunables), and compile + first N=64 step took 114 s
instead of 94 s: a user's first run of a configuration always compiles, so 8 arenas it is.

Float results are unchanged (malloc decides where buffers live, not what is computed). The cost:
a process keeps its peak heap until it exits (a training process reaches it anyway); `release`
gives the free part back, e.g. before a memory-hungry child starts (the PyTorch reference of
`--torch-reference`: at N=64 and N=128 the two no longer fit in 24 GB without it).

Tunables are read when a process starts, so a command that lacks them runs itself again with
them (`reexec`, first thing in each command's `main` when called from the command line). Child
processes inherit them, except the PyTorch reference of `--torch-reference`, which runs as its
users run it (`users_environment`): under our earlier one-arena set its N=128 step grew to 20 GB
and was OOM-killed, and the tunables are our engineering, as XLA_FLAGS are.
`ICMH_NO_MALLOC_OPTIONS=1` leaves the environment alone; a tunable the user sets in GLIBC_TUNABLES
wins. Library use (`import icmh_jax`) changes nothing: export GLIBC_TUNABLES yourself there
(`environment` gives the value).
"""

import contextlib
import ctypes
import gc
import os
import platform
import sys

TUNABLES = {"glibc.malloc.arena_max": "8", "glibc.malloc.mmap_max": "0",
            "glibc.malloc.trim_threshold": str(2 ** 40), "glibc.malloc.hugetlb": "1"}
_OFF = "ICMH_NO_MALLOC_OPTIONS"
# GLIBC_TUNABLES as the user gave it, set on the exec: for `users_environment`, and a process that
# has it never runs itself again, whatever glibc does with the variable.
_USERS = "ICMH_USER_GLIBC_TUNABLES"


def environment(env, libc: str) -> dict | None:
  """The environment a command should run under, or None when `env` needs no change.

  Args:
    env: the current environment (a mapping).
    libc: `platform.libc_ver()[0]` ("glibc" where the tunable exists).
  """
  if libc != "glibc" or env.get(_OFF, "").strip() not in ("", "0") or _USERS in env:
    return None
  given = env.get("GLIBC_TUNABLES", "")
  names = {t.split("=", 1)[0] for t in given.split(":") if t}
  missing = [f"{k}={v}" for k, v in TUNABLES.items() if k not in names]
  if not missing:
    return None
  return {**env, _USERS: given, "GLIBC_TUNABLES": ":".join(filter(None, [given, *missing]))}


def reexec() -> None:
  """Replaces this process by the same command line under `environment` when it differs."""
  env = environment(os.environ, platform.libc_ver()[0])
  if env is None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, sys.orig_argv, env)


def release() -> bool:
  """Returns the heap's free memory to the system (glibc `malloc_trim(0)`, which also drops free
  pages inside the heap); False where there is no glibc."""
  if platform.libc_ver()[0] != "glibc":
    return False
  gc.collect()
  return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))


@contextlib.contextmanager
def users_environment():
  """Within: os.environ's GLIBC_TUNABLES as the user gave it, for a child that is not ours."""
  if _USERS not in os.environ:
    yield
    return
  ours = os.environ.get("GLIBC_TUNABLES")
  given = os.environ[_USERS]
  try:
    if given:
      os.environ["GLIBC_TUNABLES"] = given
    else:
      os.environ.pop("GLIBC_TUNABLES", None)
    yield
  finally:
    if ours is None:
      os.environ.pop("GLIBC_TUNABLES", None)
    else:
      os.environ["GLIBC_TUNABLES"] = ours
