"""The BENCHMARKS.md report: waiting for an idle machine between rows, the table's rows."""

from icmh_jax.benchmarks import report


def test_wait_for_idle_waits_until_other_work_leaves_half_the_cores(monkeypatch):
  readings, sleeps = iter([1.9, 1.2, 0.3, 0.1]), []
  monkeypatch.setattr(report.harness, "busy_cores", lambda: next(readings))
  monkeypatch.setattr(report.time, "sleep", sleeps.append)
  monkeypatch.setattr(report.os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
  assert report.wait_for_idle() == 0.3  # the first reading under 1 of 2 cores
  assert len(sleeps) == 2


def test_wait_for_idle_falls_back_to_the_load_average_and_gives_up_at_the_deadline(monkeypatch):
  clock = iter([0.0, 100.0, 400.0])
  monkeypatch.setattr(report.harness, "busy_cores", lambda: None)
  monkeypatch.setattr(report.os, "getloadavg", lambda: (1.7, 1.0, 1.0))
  monkeypatch.setattr(report.time, "monotonic", lambda: next(clock))
  monkeypatch.setattr(report.time, "sleep", lambda s: None)
  monkeypatch.setattr(report.os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
  assert report.wait_for_idle(max_wait_s=300) == 1.7  # still busy when the 300 s are up


def test_table_rows_give_seconds_ratio_and_peak_memory_in_gib():
  train = {"name": "train64", "benchmark": "train", "results": dict(
      batch=8, crop=256, model={"N_machine": 64}, compute_dtype="float32", remat=False,
      step_s=16.0, compile_and_first_step_s=53.2, torch_step_s=28.8, speedup=1.8,
      peak_rss_bytes=12 * 2 ** 30, torch_peak_rss_bytes=9 * 2 ** 30)}
  failed = {"name": "codec64", "error": "no reference"}
  lines = report.table([train, failed]).splitlines()
  assert lines[2] == ("| train step, batch 8 x 256², N=64, float32 | 16.00 s (compile + first "
                      "step 53 s) | 28.80 s | **1.80x** | 12.0 GiB / 9.0 GiB |")
  assert lines[3] == "| codec64 | failed: no reference | | | |"


def test_a_row_killed_by_a_signal_says_so_instead_of_an_empty_message(monkeypatch):
  monkeypatch.setattr(report, "wait_for_idle", lambda: 0.0)
  killed = lambda cmd, **kw: report.subprocess.CompletedProcess(cmd, -9, stdout="", stderr="")
  monkeypatch.setattr(report.subprocess, "run", killed)
  row = report.run_row("train128", "ref", 2)
  assert row == {"name": "train128", "error": "killed by SIGKILL (out of memory? see `dmesg`)"}


def test_a_new_table_goes_first_and_the_old_file_stays_below_it_as_history():
  old = "\n".join([report.TITLE, "", "## Current (2026-12-05)", "", "table A", "",
                   "## First table (2026-12-02)", "", "table B", ""])
  new = report.merged("## Current (2026-12-06)\n\ntable C\n", old)
  assert new == "\n".join([report.TITLE, "", "## Current (2026-12-06)", "", "table C", "",
                           "## Earlier (2026-12-05)", "", "table A", "",
                           "## First table (2026-12-02)", "", "table B", ""])
  assert report.merged("## Current (2026-12-06)\n\ntable C", None) == \
      f"{report.TITLE}\n\n## Current (2026-12-06)\n\ntable C\n"
  section = report.document([], "python -m icmh_jax.benchmarks.report --rows train64")
  assert section.startswith("## Current (") and "Regenerate: `python -m" in section


def test_codec_rows_get_their_own_repeat_count(monkeypatch, tmp_path):
  seen = []
  monkeypatch.setattr(report, "run_row",
                      lambda name, ref, repeats: seen.append((name, repeats)) or
                      {"name": name, "error": "not run"})
  out = tmp_path / "B.md"
  assert report.main(["--torch-reference", "ref", "--rows", "train64,codec64", "--repeats", "2",
                      "--out", str(out)]) == 1
  assert seen == [("train64", 2), ("codec64", 9)]
  report.main(["--torch-reference", "ref", "--rows", "codec128", "--codec-repeats", "4",
               "--out", str(out)])
  assert seen[-1] == ("codec128", 4)
  assert "| codec64 | failed: not run |" in out.read_text()
