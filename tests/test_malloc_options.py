"""The glibc malloc tunables icmh-jax's commands run with: added when missing, never over the
user's own values, and a command really runs again under them."""

import os
import platform
import subprocess
import sys

import pytest

from icmh_jax import malloc_options


ALL = ("glibc.malloc.arena_max=8:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1099511627776"
       ":glibc.malloc.hugetlb=1")


def _fresh_environment():
  """os.environ as a command started by the user sees it: none of our malloc variables."""
  return {k: v for k, v in os.environ.items()
          if k not in ("GLIBC_TUNABLES", "ICMH_NO_MALLOC_OPTIONS", "ICMH_USER_GLIBC_TUNABLES")}


def test_missing_tunables_are_added_after_the_users_own():
  env = malloc_options.environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "A": "1"},
                                   "glibc")
  assert env["GLIBC_TUNABLES"] == ("glibc.malloc.arena_max=2:glibc.malloc.mmap_max=0:"
                                   "glibc.malloc.trim_threshold=1099511627776:glibc.malloc.hugetlb=1")
  assert env["A"] == "1"
  assert malloc_options.environment({}, "glibc")["GLIBC_TUNABLES"] == ALL


@pytest.mark.parametrize("env, libc", [
    ({"GLIBC_TUNABLES": ALL.replace("hugetlb=1", "hugetlb=0")}, "glibc"),  # the user's values win
    ({"ICMH_NO_MALLOC_OPTIONS": "1"}, "glibc"),  # switched off
    ({"ICMH_USER_GLIBC_TUNABLES": ""}, "glibc"),  # already ran again once
    ({}, "musl"), ({}, ""),  # no glibc: nothing to set
])
def test_no_change_where_the_tunable_is_given_off_or_unknown(env, libc):
  assert malloc_options.environment(env, libc) is None


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tunable is glibc's")
def test_a_command_runs_again_under_the_tunable_with_its_own_arguments():
  code = ("import os, sys; from icmh_jax import malloc_options; malloc_options.reexec(); "
          "print(os.environ['GLIBC_TUNABLES'], sys.argv[1:])")
  env = _fresh_environment()
  out = subprocess.run([sys.executable, "-c", code, "a b", "--c"], env=env, check=True,
                       capture_output=True, text=True).stdout
  assert out.splitlines() == [f"{ALL} ['a b', '--c']"]  # printed once: one exec


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tunables are glibc's")
def test_under_the_tunables_freed_memory_stays_until_release_gives_it_back():
  # 1 GiB malloc'd, touched and freed: the untrimmed heap keeps it resident; release() returns it.
  code = """if 1:
    import ctypes, os
    from icmh_jax import malloc_options
    malloc_options.reexec()
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    rss = lambda: int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    n = 1 << 30
    p = libc.malloc(ctypes.c_size_t(n))
    ctypes.memset(p, 1, n)
    libc.free(ctypes.c_void_p(p))
    kept = rss()
    print(malloc_options.release(), kept - rss())
    """
  env = _fresh_environment()
  released, dropped = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                     capture_output=True, text=True).stdout.split()
  assert released == "True" and int(dropped) > 0.9 * (1 << 30)


@pytest.mark.parametrize("users", ["", "glibc.malloc.arena_max=4"])
def test_a_child_that_is_not_ours_gets_the_users_tunables(monkeypatch, users):
  monkeypatch.setenv("GLIBC_TUNABLES", ALL)
  monkeypatch.setenv("ICMH_USER_GLIBC_TUNABLES", users)
  with malloc_options.users_environment():
    assert os.environ.get("GLIBC_TUNABLES") == (users or None)
  assert os.environ["GLIBC_TUNABLES"] == ALL
  assert malloc_options.environment({}, "glibc")["ICMH_USER_GLIBC_TUNABLES"] == ""
