"""`icmh bench train` wiring: config loading and knob overrides (the timing itself runs in `slow`)."""

import argparse
import json

import pytest

from icmh_jax import cli
from icmh_jax.benchmarks import train as bench_train
from icmh_jax.errors import ConfigError


def _args(**kw):
  p = argparse.ArgumentParser()
  bench_train.add_arguments(p)
  argv = []
  for k, v in kw.items():
    argv += [f"--{k.replace('_', '-') if k != 'N' else 'N'}", str(v)]
  return p.parse_args(argv)


def test_model_and_N_pick_the_trained_codec_width():
  c = bench_train._config(_args(model="tcm", N=64))
  assert c.system == "tcm" and c.model.N_machine == 64
  c = bench_train._config(_args(model="fr_icmh", N=48, batch=4, crop=128))
  assert c.model.N == 48 and c.model.N_machine == 128
  assert (c.data.batch_size, c.data.crop) == (4, 128)


def test_config_file_knobs_are_applied():
  c = bench_train._config(_args(config="configs/pr_icmh.py:na=5,tiny", compute_dtype="bfloat16"))
  assert c.model.num_slices_a == 5 and c.model.N == 32 and c.compute_dtype == "bfloat16"
  with pytest.raises(ConfigError, match="nope.py does not exist"):
    bench_train._config(_args(config="configs/nope.py"))


@pytest.mark.slow
def test_bench_train_reports_step_time_and_images_per_second(capsys):
  rc = cli.main(["bench", "train", "--config", "configs/tcm.py:tiny", "--batch", "2", "--crop",
                 "64", "--repeats", "2", "--json"])
  assert rc == 0
  doc = json.loads(capsys.readouterr().out)
  res = doc["results"]
  assert res["batch"] == 2 and res["step_s"] > 0
  assert abs(res["images_per_s"] - 2 / res["step_s"]) < 1e-9
