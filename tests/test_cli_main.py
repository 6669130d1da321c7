import pytest

from icmh_jax import cli


def test_cli_without_command_is_a_usage_error():
  with pytest.raises(SystemExit) as e:
    cli.main([])
  assert e.value.code == 2


def test_cli_unknown_command_is_a_usage_error():
  with pytest.raises(SystemExit) as e:
    cli.main(["no-such-command"])
  assert e.value.code == 2
