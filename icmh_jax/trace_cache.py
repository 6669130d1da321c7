"""What a new process would otherwise trace again, kept beside the persistent compilation cache.

JAX's cache keeps compiled programs, but finding one means tracing and lowering the function
first: the params tree `registry.load_system` checks a checkpoint against comes from tracing the
whole network's init (about 5 s for a tiny FR-ICMH), and the first encode traced its 23 coding
functions (about 3 s) before reading them back. So `registry` keeps that tree here, and
`coding.call_method` its compiled functions (serialized executables, loaded without tracing).
Entries live in `<compilation cache>/icmh_<kind>/`, keyed by what they depend on plus the source
of `icmh_jax.layers`, `.entropy` and `.models` and the JAX version (executables also by
`environment()`), so a change to the networks' code makes new entries; nothing is kept while the
compilation cache is off. (Serialized `jax.export`s were tried too: deserializing them took 1.7 s
of the 2.4 s their tracing takes, and needs flatbuffers.)
"""

import functools
import hashlib
import json
import os
import pathlib
import platform

import jax
import numpy as np


def cache_dir() -> str | None:
  return jax.config.jax_compilation_cache_dir  # set by `compilation_cache.enable`


@functools.cache
def _source_digest() -> bytes:
  digest = hashlib.sha256(jax.__version__.encode())
  package = pathlib.Path(__file__).resolve().parent
  for source in sorted(p for part in ("layers", "entropy", "models")
                       for p in (package / part).glob("*.py")):
    digest.update(str(source.relative_to(package)).encode() + source.read_bytes())
  return digest.digest()


@functools.cache
def environment() -> str:
  """What a compiled program depends on beyond its source and shapes: jaxlib, XLA's flags, the
  device and the CPU's features (an executable built for AVX-512 must not load elsewhere)."""
  import jaxlib
  device = jax.devices()[0]
  try:
    flags = next(line for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("flags"))
  except (OSError, StopIteration):
    flags = platform.processor()
  return repr((jaxlib.__version__, os.environ.get("XLA_FLAGS", ""), device.platform,
               device.device_kind, device.client.platform_version, jax.config.jax_enable_x64,
               str(jax.config.jax_default_matmul_precision), flags))


def entry_path(kind: str, key: str, suffix: str) -> pathlib.Path | None:
  """Where the entry of `key` (a deterministic text) lives; None while the cache is off."""
  root = cache_dir()
  if not root:
    return None
  digest = hashlib.sha256(_source_digest() + key.encode()).hexdigest()[:32]
  return pathlib.Path(root) / f"icmh_{kind}" / f"{digest}{suffix}"


def write(path: pathlib.Path, data: bytes) -> None:
  """Atomically; a read-only or full cache costs the trace next time, nothing else."""
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
  except OSError:
    pass


def files_signature(directory) -> str:
  """Every file under `directory` with its size and modification time: a key that changes when
  any of them is rewritten."""
  root = pathlib.Path(directory)
  return repr(sorted((str(f.relative_to(root)), st.st_size, st.st_mtime_ns)
                     for f in root.rglob("*") if f.is_file() for st in (f.stat(),)))


def write_arrays(path: pathlib.Path, arrays: list) -> None:
  """`arrays` (numpy) in one file: a JSON header of dtypes and shapes, then their bytes."""
  arrays = [np.ascontiguousarray(a) for a in arrays]
  header = json.dumps([[a.dtype.str, list(a.shape)] for a in arrays]).encode()
  write(path, b"".join([len(header).to_bytes(8, "little"), header,
                        *(a.tobytes() for a in arrays)]))


def read_arrays(path: pathlib.Path) -> list | None:
  """The arrays `write_arrays` wrote (views of one buffer); None when the file is missing or
  damaged."""
  try:
    data = bytearray(path.read_bytes())  # writable, as arrays restored by Orbax are
    n = int.from_bytes(data[:8], "little")
    offset, out = 8 + n, []
    for dtype, shape in json.loads(data[8:offset]):
      count = int(np.prod(shape, dtype=np.int64))
      out.append(np.frombuffer(data, np.dtype(dtype), count, offset).reshape(shape))
      offset += out[-1].nbytes
    return out if offset == len(data) else None
  except (OSError, ValueError, TypeError):
    return None


def keep_newest(kind: str, count: int) -> None:
  """Deletes all but the `count` most recently used entries of `kind` (a copy of a model's
  weights is as large as the model)."""
  root = cache_dir()
  if not root:
    return
  try:
    entries = sorted((pathlib.Path(root) / f"icmh_{kind}").iterdir(),
                     key=lambda f: f.stat().st_mtime_ns)
    for stale in entries[:-count]:
      stale.unlink()
  except OSError:
    pass
