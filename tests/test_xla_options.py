"""The XLA options icmh-jax sets: added when missing, never over a user's own value."""

from icmh_jax import xla_options


def test_missing_option_is_added_and_a_users_value_wins(monkeypatch):
  monkeypatch.delenv("ICMH_NO_XLA_OPTIONS", raising=False)
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
  out = xla_options.apply().split()
  assert "--xla_force_host_platform_device_count=4" in out
  assert "--xla_llvm_disable_expensive_passes=true" in out
  assert "--xla_backend_optimization_level=1" in out
  monkeypatch.setenv("XLA_FLAGS", "--xla_llvm_disable_expensive_passes=false")
  assert xla_options.apply().split() == ["--xla_llvm_disable_expensive_passes=false",
                                         "--xla_backend_optimization_level=1"]


def test_switch_leaves_xla_flags_alone(monkeypatch):
  monkeypatch.setenv("ICMH_NO_XLA_OPTIONS", "1")
  monkeypatch.setenv("XLA_FLAGS", "--a=1")
  assert xla_options.apply() == "--a=1"
