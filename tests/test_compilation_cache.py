"""The persistent compilation cache: where it goes, how to move it, how to turn it off."""

import jax

from icmh_jax import compilation_cache


def _restore():
  return jax.config.jax_compilation_cache_dir


def test_cache_dir_follows_icmh_variable_then_jax_variable_then_xdg(tmp_path, monkeypatch):
  before = _restore()
  try:
    monkeypatch.delenv("ICMH_NO_COMPILATION_CACHE", raising=False)
    monkeypatch.setenv("ICMH_COMPILATION_CACHE_DIR", str(tmp_path / "ours"))
    assert compilation_cache.enable() == tmp_path / "ours"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "ours")
    monkeypatch.delenv("ICMH_COMPILATION_CACHE_DIR")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax"))
    assert compilation_cache.enable() == tmp_path / "jax"
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compilation_cache.enable() == tmp_path / "xdg" / "icmh-jax" / "xla"
    assert (tmp_path / "xdg" / "icmh-jax" / "xla").is_dir()
  finally:
    jax.config.update("jax_compilation_cache_dir", before)


def test_cache_is_off_with_the_environment_switch(tmp_path, monkeypatch):
  before = _restore()
  monkeypatch.setenv("ICMH_NO_COMPILATION_CACHE", "1")
  monkeypatch.setenv("ICMH_COMPILATION_CACHE_DIR", str(tmp_path / "never"))
  assert compilation_cache.enable() is None
  assert not (tmp_path / "never").exists()
  assert jax.config.jax_compilation_cache_dir == before
