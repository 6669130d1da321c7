import json

import pytest

from icmh_jax import cli

# docs/design.md's table (reference LIC-TCM code, N = 128), the additional model per N_a. Each
# case traces an N = 128 model; the default run keeps one per system (the CLI's wiring), and
# tests/models/test_tcm_params.py checks every number of the table at the model level.
_SLOW = pytest.mark.slow
EXPECTED = [("fr_icmh", 3, 58_723_412), pytest.param("fr_icmh", 4, 67_015_828, marks=_SLOW),
            pytest.param("fr_icmh", 5, 76_568_148, marks=_SLOW),
            pytest.param("pr_icmh", 3, 56_364_116, marks=_SLOW), ("pr_icmh", 4, 65_836_180),
            pytest.param("pr_icmh", 5, 76_568_148, marks=_SLOW)]
PAPER = {3: "58.7", 4: "67.0", 5: "76.6"}


@pytest.mark.parametrize("system,na,additional", EXPECTED)
def test_params_of_additional_model_equal_design_table(system, na, additional, capsys):
  assert cli.main(["params", "--system", system, "--na", str(na), "--N", "128"]) == 0
  text = capsys.readouterr().out
  assert f"additional  {additional:>13,}" in text
  assert f"paper Table II: {PAPER[na]} M" in text
  assert f"base        {76_568_148:>13,}" in text
  assert f"total       {76_568_148 + additional:>13,}" in text


def test_params_json_for_lic_tcm_model(capsys):
  argv = ["params", "--model", "tcm", "--N", "128", "--M", "320", "--slices", "5", "--json"]
  assert cli.main(argv) == 0
  doc = json.loads(capsys.readouterr().out)
  assert (doc["base"], doc["additional"], doc["total"]) == (76_568_148, 0, 76_568_148)
  assert doc["system"] == "tcm" and "paper_table_ii_additional" not in doc


def test_params_unknown_system_exits_1(capsys):
  assert cli.main(["params", "--system", "fr-icmh"]) == 1
  assert "unknown system 'fr-icmh'" in capsys.readouterr().err
