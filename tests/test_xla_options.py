"""The XLA options icmh-jax sets: added when missing, never over a user's own value."""

import ast
import os
import subprocess
import sys

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
                                         "--xla_backend_optimization_level=1",
                                         "--xla_cpu_experimental_ynn_fusion_type="]


def test_a_later_apply_replaces_what_icmh_jax_added_never_the_users(monkeypatch):
  monkeypatch.delenv("ICMH_NO_XLA_OPTIONS", raising=False)
  monkeypatch.setattr(xla_options, "_ADDED", {})
  ynn = "--xla_cpu_experimental_ynn_fusion_type"
  monkeypatch.setenv("XLA_FLAGS", "--a=1")
  assert f"{ynn}=" in xla_options.apply().split()  # the codec's default: no YNNPACK fusions
  out = xla_options.apply(xla_options.TRAINING_OPTIONS).split()
  assert f"{ynn}=dot,eltwise,reduce" in out and f"{ynn}=" not in out and "--a=1" in out
  monkeypatch.setattr(xla_options, "_ADDED", {})
  monkeypatch.setenv("XLA_FLAGS", f"{ynn}=dot")
  xla_options.apply()
  assert xla_options.apply(xla_options.TRAINING_OPTIONS).split().count(f"{ynn}=dot") == 1


def test_switch_leaves_xla_flags_alone(monkeypatch):
  monkeypatch.setenv("ICMH_NO_XLA_OPTIONS", "1")
  monkeypatch.setenv("XLA_FLAGS", "--a=1")
  assert xla_options.apply() == "--a=1"


def test_options_only_where_jax_computes_on_the_cpu(monkeypatch):
  monkeypatch.delenv("ICMH_NO_XLA_OPTIONS", raising=False)
  monkeypatch.delenv("JAX_PLATFORMS", raising=False)
  monkeypatch.setenv("XLA_FLAGS", "--a=1")
  monkeypatch.setattr(xla_options, "accelerator_plugins", lambda: ["xla_cuda13"])
  assert xla_options.apply() == "--a=1"  # JAX will pick the GPU: its codegen is left alone
  monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
  assert xla_options.apply() == "--a=1"
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  assert xla_options.apply().split() == ["--a=1", *(f"{k}={v}" for k, v in
                                                    xla_options.OPTIONS.items())]
  monkeypatch.setenv("XLA_FLAGS", "--a=1")
  monkeypatch.delenv("JAX_PLATFORMS")
  monkeypatch.setattr(xla_options, "accelerator_plugins", lambda: [])
  assert xla_options.apply().split() == ["--a=1", *(f"{k}={v}" for k, v in
                                                    xla_options.OPTIONS.items())]


def test_accelerator_plugins_are_found_where_jax_looks(monkeypatch, tmp_path):
  import importlib
  (tmp_path / "jax_plugins" / "xla_fake").mkdir(parents=True)
  (tmp_path / "jax_plugins" / "xla_fake" / "__init__.py").write_text("")
  monkeypatch.syspath_prepend(str(tmp_path))
  importlib.invalidate_caches()
  assert "xla_fake" in xla_options.accelerator_plugins()


def test_ynn_convolutions_read_from_xla_flags(monkeypatch):
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  assert xla_options.ynn_convolutions()  # XLA's CPU default
  monkeypatch.setenv("XLA_FLAGS", "--a=1 --xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce")
  assert not xla_options.ynn_convolutions()
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=individual_convolution")
  assert xla_options.ynn_convolutions()


def _training_flags_in_fresh_process(env_extra, start_backend_first=False):
  """(XLA_FLAGS after `for_training`, whether conv.py takes the row-patch filter gradient,
  warnings) in a new Python."""
  code = ("import os, jax, warnings; from icmh_jax import xla_options\n"
          "import importlib; conv = importlib.import_module('icmh_jax.layers.conv')\n"
          + ("jax.numpy.zeros(1).block_until_ready()\n" if start_backend_first else "")
          + "with warnings.catch_warnings(record=True) as w:\n"
            "  warnings.simplefilter('always'); xla_options.for_training()\n"
            "print(repr(os.environ.get('XLA_FLAGS', '')), conv.row_patch_filter_grad(), len(w))")
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "ICMH_NO_XLA_OPTIONS", "JAX_PLATFORMS")}
  env.update(env_extra)
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       check=True)
  flags, rows, warned = out.stdout.rsplit(None, 2)
  return ast.literal_eval(flags), rows == "True", int(warned)


def test_training_takes_convolutions_out_of_ynnpack_unless_told_not_to():
  flags, rows, warned = _training_flags_in_fresh_process({})
  assert "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce" in flags.split()
  assert flags.count("ynn_fusion_type") == 1 and not rows and not warned  # import's value replaced
  user = "--xla_cpu_experimental_ynn_fusion_type=individual_convolution"
  flags, rows, warned = _training_flags_in_fresh_process({"XLA_FLAGS": user})
  assert flags.split().count(user) == 1 and flags.count("ynn_fusion_type") == 1 and rows
  flags, rows, _ = _training_flags_in_fresh_process({"ICMH_NO_XLA_OPTIONS": "1"})
  assert flags == "" and rows
  # too late once the backend runs: it runs without YNNPACK's fusions (the import's value), so
  # its convolutions are XLA's own and conv.py takes their filter gradient: only the dispatch's
  # warning (inline_cpu_dispatch), none of YNNPACK
  flags, rows, warned = _training_flags_in_fresh_process({}, start_backend_first=True)
  assert "--xla_cpu_experimental_ynn_fusion_type=" in flags.split() and not rows and warned == 1
  flags, rows, warned = _training_flags_in_fresh_process({"XLA_FLAGS": user},
                                                         start_backend_first=True)
  assert flags.split().count(user) == 1 and rows and warned == 2  # and the user's YNNPACK convs


def _dispatch_in_fresh_process(env_extra, start_backend_first=False):
  """(inline_cpu_dispatch's return, JAX's async flag after it, warnings) in a new Python."""
  code = ("import jax, warnings; from icmh_jax import xla_options\n"
          + ("jax.numpy.zeros(1).block_until_ready()\n" if start_backend_first else "")
          + "with warnings.catch_warnings(record=True) as w:\n"
            "  warnings.simplefilter('always'); inline = xla_options.inline_cpu_dispatch()\n"
            "jax.numpy.zeros(1).block_until_ready()\n"
            "print(inline, jax.config.read('jax_cpu_enable_async_dispatch'), len(w))")
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAX_CPU_ENABLE_ASYNC_DISPATCH", "ICMH_NO_XLA_OPTIONS")}
  env.update(env_extra)
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       check=True)
  return out.stdout.split()


def test_training_processes_dispatch_inline_unless_the_user_chose():
  assert _dispatch_in_fresh_process({}) == ["True", "False", "0"]
  assert _dispatch_in_fresh_process({"JAX_CPU_ENABLE_ASYNC_DISPATCH": "true"}) == [
      "False", "True", "0"]
  assert _dispatch_in_fresh_process({"ICMH_NO_XLA_OPTIONS": "1"}) == ["False", "True", "0"]
  assert _dispatch_in_fresh_process({"JAX_CPU_ENABLE_ASYNC_DISPATCH": "false",
                                     "ICMH_NO_XLA_OPTIONS": "1"}) == ["True", "False", "0"]
  # too late once the backend runs: said, not silently ignored
  assert _dispatch_in_fresh_process({}, start_backend_first=True) == ["False", "True", "1"]
