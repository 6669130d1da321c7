"""The bench harness: median of the timed runs, first call apart, busy-machine note."""

import json
import os

import pytest

from icmh_jax.benchmarks import harness


def test_measure_reports_the_median_of_the_timed_runs_and_times_the_first_call_apart():
  calls = []
  t = harness.measure("f", lambda: calls.append(1), repeats=3, warmup=2)
  assert len(calls) == 5 and len(t.runs_s) == 3 and t.first_call_s is not None
  assert t.median_s == sorted(t.runs_s)[1]
  with pytest.raises(ValueError, match="repeats must be >= 1"):
    harness.measure("f", lambda: None, repeats=0)


def test_compile_phases_time_a_first_call_and_nothing_for_a_cached_one():
  import jax
  import jax.numpy as jnp
  f = jax.jit(lambda x: jnp.sin(x) * 3.0 + jnp.cos(x))  # a new function: nothing cached
  x = jnp.arange(7.0)
  with harness.compile_phases() as first:
    jax.block_until_ready(f(x))
  assert set(first) == {"trace_s", "lower_s", "compile_or_load_s"}
  assert all(0 < v < 60 for v in first.values()), first
  with harness.compile_phases() as again:
    jax.block_until_ready(f(x))
  assert again == {"trace_s": 0.0, "lower_s": 0.0, "compile_or_load_s": 0.0}
  with harness.compile_phases() as other_shape:
    jax.block_until_ready(f(jnp.arange(9.0)))
  assert other_shape["trace_s"] > 0 and other_shape["compile_or_load_s"] > 0


@pytest.mark.parametrize("load, note", [(0.9, False), (1.5, True)])
def test_busy_note_above_half_the_usable_cores(load, note):
  machine = dict(load_avg=(load, 0, 0), cores=8, usable_cores=2)
  assert (harness.busy_note(machine) is not None) == note


@pytest.mark.parametrize("busy, note", [(0.2, False), (1.3, True)])
def test_busy_note_counts_busy_cores_over_the_load_average(busy, note):
  # a load average of 1.9 still counting a command that ended: what was busy decides
  machine = dict(load_avg=(1.9, 0, 0), cores=2, usable_cores=2, busy_cores=busy)
  assert (harness.busy_note(machine) is not None) == note


def test_busy_cores_from_two_proc_stat_readings():
  # 300 of 400 jiffies busy on 4 cores: 3 cores busy
  assert harness.busy_cores_between((1000, 5000), (1300, 5400), cores=4) == pytest.approx(3.0)
  assert harness.busy_cores_between((1000, 5000), (1000, 5000), cores=4) == 0.0
  measured = harness.busy_cores(0.2)
  assert measured is None or 0.0 <= measured <= (os.cpu_count() or 1)


def test_report_is_json_with_machine_versions_and_notes():
  doc = json.loads(json.dumps(harness.report("x", {"a": 1.0})))
  assert doc["benchmark"] == "x" and doc["results"] == {"a": 1.0}
  assert doc["machine"]["versions"]["jax"] and doc["machine"]["usable_cores"] >= 1
  assert isinstance(doc["notes"], list)


def test_peak_rss_of_a_spawned_child_is_its_own():
  """The reference side runs in a spawned child: its peak must not inherit the parent's."""
  import multiprocessing

  import numpy as np
  big = np.ones(400 * 2**20 // 8)  # 400 MiB, touched
  parent = harness.peak_rss_bytes()
  assert parent >= big.nbytes
  with multiprocessing.get_context("spawn").Pool(1) as pool:
    child = pool.apply(harness.peak_rss_bytes)
  assert child < parent - big.nbytes // 2


def test_coder_share_counts_only_time_spent_inside_the_range_coder():
  import time
  import numpy as np
  from icmh_jax.benchmarks import codec
  from icmh_jax.entropy import coder, gaussian, tables
  t = tables.gaussian_tables(gaussian.scale_table())
  idx = np.arange(200_000) % gaussian.NUM_SCALES
  sym = np.zeros(idx.size, np.int32)

  def code():
    enc = coder.SymbolEncoder(t)
    enc.encode(sym, idx)
    enc.finish()
  assert codec.coder_share(lambda: time.sleep(0.05)) == 0.0
  assert 0.9 < codec.coder_share(code) <= 1.0
