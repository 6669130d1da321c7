"""BENCHMARKS.md: every side-by-side row against the PyTorch LIC-TCM reference, regenerated.

  python -m icmh_jax.benchmarks.report --torch-reference DIR [--rows train64,codec64] [--out FILE]
      [--repeats 3] [--codec-repeats 9]   (timed train steps / codec calls per side)

The new table goes first in FILE, as its "## Current (date)" section; what FILE held stays below
it as history. Each row is one `icmh bench ... --json --torch-reference DIR` in a process of its
own (peak RSS is per process; the reference side runs in a child of that,
`torch_reference.isolated`), run one after the other: time nothing else while this runs. The
table gives seconds per side, the ratio reference / ours (> 1: we are faster) and peak RSS, with
the machine, versions and date. Absolute seconds are per machine; the ratios measured in one run
are the claim.
"""

import argparse
import datetime
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from icmh_jax import malloc_options
from icmh_jax.benchmarks import harness

TITLE = "# Benchmarks: icmh-jax against the PyTorch LIC-TCM reference"
# name -> (bench target, arguments). Paper shapes: batch 8 x 256² for training, 512 x 768 photos.
ROWS = {
    "train64": ("train", ["--model", "tcm", "--N", "64"]),
    "train128": ("train", ["--model", "tcm", "--N", "128"]),  # remat: on by default at N=128
    "train64_bf16": ("train", ["--model", "tcm", "--N", "64", "--compute-dtype", "bfloat16"]),
    "codec64": ("codec", ["--N", "64"]),
    "codec128": ("codec", ["--N", "128"]),
}


def wait_for_idle(max_wait_s: float = 300.0) -> float:
  """Waits until other work keeps fewer than half the usable cores busy (`harness.busy_cores`,
  over 1 s; the 1-minute load average where /proc/stat is missing, which still counts the
  previous row for a minute or two), at most `max_wait_s`; returns the last reading."""
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  deadline = time.monotonic() + max_wait_s
  while True:
    busy = harness.busy_cores()
    if busy is None:
      busy = os.getloadavg()[0]
    if busy < 0.5 * cores or time.monotonic() >= deadline:
      return busy
    time.sleep(5)


def run_row(name: str, reference: str, repeats: int) -> dict:
  target, args = ROWS[name]
  wait_for_idle()
  cmd = [sys.executable, "-m", "icmh_jax.cli", "bench", target, *args, "--repeats", str(repeats),
         "--json", "--torch-reference", reference]
  print(f"[{name}] {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
  done = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if done.returncode < 0:  # a signal leaves no message: say which (SIGKILL: usually the OOM killer)
    sig = signal.Signals(-done.returncode).name
    why = " (out of memory? see `dmesg`)" if sig == "SIGKILL" else ""
    return {"name": name, "error": f"killed by {sig}{why}"}
  if done.returncode:
    return {"name": name, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
  return {"name": name, **json.loads(done.stdout)}


def _gb(n) -> str:
  return f"{n / 2 ** 30:.1f} GiB" if n else "--"


def table(rows: list[dict]) -> str:
  lines = ["| work | ours | PyTorch reference | reference / ours | peak RSS ours / reference |",
           "|---|---|---|---|---|"]
  for row in rows:
    if "error" in row:
      lines.append(f"| {row['name']} | failed: {row['error']} | | | |")
      continue
    r = row["results"]
    if row["benchmark"] == "train":
      what = (f"train step, batch {r['batch']} x {r['crop']}², N={r['model'].get('N_machine')}, "
              f"{r['compute_dtype']}" + (f", remat {r['remat']}" if r.get("remat") else ""))
      lines.append(f"| {what} | {r['step_s']:.2f} s (compile + first step "
                   f"{r['compile_and_first_step_s']:.0f} s) | {r['torch_step_s']:.2f} s | "
                   f"**{r['speedup']:.2f}x** | {_gb(r.get('peak_rss_bytes'))} / "
                   f"{_gb(r.get('torch_peak_rss_bytes'))} |")
    else:
      what = f"encode / decode {r['size']}, N={r['N']}"
      share = r.get("range_coding_share_decode")
      share = f"; range coding {share:.0%} of decode" if share is not None else ""
      lines.append(f"| {what} | {r['encode_s']:.2f} / {r['decode_s']:.2f} s ({r['bytes']} bytes"
                   f"{share}) "
                   f"| {r['torch_encode_s']:.2f} / {r['torch_decode_s']:.2f} s "
                   f"({r['torch_bytes']} bytes) | **{r['speedup_encode']:.2f}x / "
                   f"{r['speedup_decode']:.2f}x** | {_gb(r.get('peak_rss_bytes'))} / "
                   f"{_gb(r.get('torch_peak_rss_bytes'))} |")
  return "\n".join(lines)


def document(rows: list[dict], command: str) -> str:
  """The "## Current (date)" section: the command, machine, versions and the table."""
  machine = next((r["machine"] for r in rows if "machine" in r), {})
  versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items())
  notes = sorted({n for r in rows for n in r.get("notes", [])})
  return "\n".join([
      f"## Current ({datetime.date.today().isoformat()})", "",
      f"Regenerate: `{command}` (on an otherwise idle machine).", "",
      f"- machine: {machine.get('cpu', '?')}, {machine.get('usable_cores', '?')} usable cores, "
      f"backend {machine.get('backend', '?')}, ISA {' '.join(machine.get('isa', [])) or '?'}",
      f"- versions: {versions}",
      f"- XLA_FLAGS: `{machine.get('xla_flags', '')}`; GLIBC_TUNABLES: "
      f"`{machine.get('glibc_tunables', '')}`; kernel {machine.get('kernel', '?')}", "",
      table(rows), "",
      *(f"> note: {n}" for n in notes), ""])


def merged(section: str, old: str | None) -> str:
  """The file with `section` first and what `old` held after it, as history: its own current
  section becomes "## Earlier (date)", nothing of it is dropped."""
  history = ""
  if old:
    body = old[len(TITLE):] if old.startswith(TITLE) else old
    history = body.strip().replace("## Current (", "## Earlier (", 1)
  return "\n\n".join(part for part in (TITLE, section.strip(), history) if part) + "\n"


def main(argv=None) -> int:
  if argv is None:  # run from the command line
    malloc_options.reexec()
  p = argparse.ArgumentParser(prog="python -m icmh_jax.benchmarks.report",
                              description=__doc__.splitlines()[0])
  p.add_argument("--torch-reference", required=True, metavar="DIR",
                 help="the LIC_TCM checkout (models/tcm.py) with torch and compressai installed")
  p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
  p.add_argument("--repeats", type=int, default=3, help="timed train steps per side")
  p.add_argument("--codec-repeats", type=int, default=9,
                 help="timed encodes and decodes per side: a call takes a second or two, so "
                      "nine cost little and keep one slow call from moving the median")
  p.add_argument("--out", default="BENCHMARKS.md")
  args = p.parse_args(argv)
  names = [n for n in args.rows.split(",") if n]
  unknown = [n for n in names if n not in ROWS]
  if unknown:
    p.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
  rows = [run_row(n, args.torch_reference,
                  args.codec_repeats if ROWS[n][0] == "codec" else args.repeats) for n in names]
  command = "python -m icmh_jax.benchmarks.report " + " ".join(
      a if " " not in a else repr(a) for a in (argv if argv is not None else sys.argv[1:]))
  out = pathlib.Path(args.out)
  out.write_text(merged(document(rows, command), out.read_text() if out.exists() else None))
  print(f"wrote {args.out}")
  return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
  sys.exit(main())
