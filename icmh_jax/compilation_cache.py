"""JAX's persistent compilation cache, on by default for `icmh`, `train.py` and `evaluate.py`.

A new process otherwise compiles every network again: tens of seconds before the first encode,
minutes before the first train step. With the cache, a second `icmh encode` in a new process
reads the compiled programs from disk.

Where: `$ICMH_COMPILATION_CACHE_DIR`, else JAX's own `$JAX_COMPILATION_CACHE_DIR`, else
`$XDG_CACHE_HOME/icmh-jax/xla` (`~/.cache/icmh-jax/xla`). `ICMH_NO_COMPILATION_CACHE=1` turns it
off. Every compile is cached, however small: model init and the range coder's table builders
compile hundreds of small programs.
"""

import os
import pathlib

_OFF = "ICMH_NO_COMPILATION_CACHE"


def default_dir() -> pathlib.Path:
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / "icmh-jax" / "xla"


def enable() -> pathlib.Path | None:
  """Turns the cache on (before the first compile); returns its directory, None when off."""
  if os.environ.get(_OFF, "").strip() not in ("", "0"):
    return None
  directory = pathlib.Path(os.environ.get("ICMH_COMPILATION_CACHE_DIR")
                           or os.environ.get("JAX_COMPILATION_CACHE_DIR") or default_dir())
  try:
    directory.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None  # a read-only home must not stop a command; it then compiles as before
  import jax
  jax.config.update("jax_compilation_cache_dir", str(directory))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return directory
