"""`icmh bench entropy` through the CLI: JSON with throughput and a near-zero overhead."""

import json

from icmh_jax import cli


def test_bench_entropy_reports_throughput_and_overhead_below_half_a_percent(capsys):
  assert cli.main(["bench", "entropy", "--symbols", "50000", "--repeats", "1",
                   "--escape-fraction", "0.001", "--json"]) == 0
  doc = json.loads(capsys.readouterr().out)
  r = doc["results"]
  assert doc["benchmark"] == "entropy" and r["symbols"] == 50_000 and r["escapes"] > 20
  assert r["encode_msym_per_s"] > 0 and r["decode_msym_per_s"] > 0
  assert abs(r["bytes"] - r["ideal_bytes"]) <= 0.005 * r["ideal_bytes"] + 64
