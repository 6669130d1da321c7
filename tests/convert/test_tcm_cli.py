"""`icmh convert tcm`: a reference state_dict becomes a params directory the registry loads."""

import json

import jax
import numpy as np
import pytest

from icmh_jax import cli
from icmh_jax.convert import pth
from icmh_jax.convert import tcm as convert_tcm
from icmh_jax.errors import CheckpointError
from icmh_jax.golden import tcm as golden_tcm


@pytest.fixture(scope="module")
def golden_state_dict(reference_dir):
  d = reference_dir / "tcm"
  meta = json.loads((d / "tcm_golden.json").read_text())
  return golden_tcm.rebuild_state_dict(meta, np.load(d / "tcm_golden.npz"))


@pytest.fixture(scope="module")
def golden_npz(tmp_path_factory, golden_state_dict):
  src = tmp_path_factory.mktemp("sd") / "tcm_sd.npz"
  np.savez(src, **golden_state_dict)
  return src


@pytest.mark.slow  # a CLI subprocess, 12 s
def test_cli_convert_infers_the_sizes_and_writes_params_the_registry_loads(tmp_path, golden_npz,
                                                                          golden_state_dict,
                                                                          capsys):
  from icmh_jax.models import registry
  from icmh_jax.params_io import read_meta
  out = tmp_path / "tcm_n32"
  assert cli.main(["convert", "tcm", str(golden_npz), str(out)]) == 0  # no --N: read from the sd
  model = read_meta(out)["model"]  # {N (of the machine codec), M, num_slices}
  assert sorted(model.values()) == [5, 32, 320] and model["M"] == 320
  system, params = registry.load_system(str(out))
  assert system.name == "tcm"
  base = params["base"]
  np.testing.assert_array_equal(np.asarray(base["g_a"]["0"]["conv1"]["kernel"]),
                                golden_state_dict["g_a.0.conv1.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(
      np.asarray(base["ch_arm"]["lrp_transforms_4"]["4"]["bias"]),
      golden_state_dict["lrp_transforms.4.4.bias"])
  assert len(jax.tree_util.tree_leaves(base)) == 1245
  # the params directory is not replaced without --overwrite, and is with it
  capsys.readouterr()
  assert cli.main(["convert", "tcm", str(golden_npz), str(out), "--N", "32"]) == 1
  assert f"{out} already holds a params directory; pass --overwrite" in capsys.readouterr().err
  stamp = (out / "meta" / "metadata").stat().st_mtime_ns
  assert cli.main(["convert", "tcm", str(golden_npz), str(out), "--overwrite", "--system",
                   "sa_icm"]) == 0
  assert read_meta(out)["system"] == "sa_icm" and (out / "meta" / "metadata").stat().st_mtime_ns \
      != stamp


def test_cli_convert_with_a_size_that_disagrees_exits_1_naming_the_tensor(tmp_path, golden_npz,
                                                                         capsys):
  assert cli.main(["convert", "tcm", str(golden_npz), str(tmp_path / "out"), "--N", "64"]) == 1
  assert ("N=64 was given but the state_dict has N=32 (g_a.0.conv1.weight: (64, 3, 3, 3))"
          in capsys.readouterr().err)
  assert not (tmp_path / "out").exists()


def test_cli_convert_mismatch_names_the_first_few_tensors_only(tmp_path, golden_state_dict,
                                                               capsys):
  src = tmp_path / "no_g_s.npz"
  np.savez(src, **{k: v for k, v in golden_state_dict.items() if not k.startswith("g_s.")})
  assert cli.main(["convert", "tcm", str(src), str(tmp_path / "out")]) == 1
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1
  missing = err.split("missing keys (")[1]
  n = int(missing.split(")")[0])
  assert n > 100 and f"... and {n - 5} more" in err and missing.count(", ") == 5


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_cli_convert_never_touches_a_folder_that_is_not_a_params_directory(tmp_path, golden_npz,
                                                                         capsys, overwrite):
  home = tmp_path / "home"
  (home / "params").mkdir(parents=True)  # looks a little like one, but has no meta and more
  (home / "notes.txt").write_text("keep me")
  assert cli.main(["convert", "tcm", str(golden_npz), str(home)] + overwrite) == 1
  assert f"{home} is a non-empty directory that is not an icmh params directory; refusing" in \
      capsys.readouterr().err
  assert (home / "notes.txt").read_text() == "keep me" and (home / "params").is_dir()
  (tmp_path / "file").write_text("x")
  assert cli.main(["convert", "tcm", str(golden_npz), str(tmp_path / "file")] + overwrite) == 1
  assert "exists and is not a directory" in capsys.readouterr().err
  assert (tmp_path / "file").read_text() == "x"


def test_cli_convert_refuses_nan_and_inf_naming_the_tensors(tmp_path, capsys):
  src = tmp_path / "bad.npz"
  np.savez(src, **{"g_a.0.conv1.weight": np.array([1.0, np.nan], np.float32),
                   "h_a.0.conv1.weight": np.array([np.inf], np.float32),
                   "g_a.0.conv1.bias": np.zeros(2, np.float32)})
  assert cli.main(["convert", "tcm", str(src), str(tmp_path / "out")]) == 1
  assert (f"{src} holds NaN or Inf in 2 tensors (g_a.0.conv1.weight, h_a.0.conv1.weight)"
          in capsys.readouterr().err)


def test_cli_convert_refuses_bfloat16_tensors_in_a_pth(tmp_path, capsys):
  torch = pytest.importorskip("torch")
  path = tmp_path / "bf16.pth"
  torch.save({"g_a.0.conv1.weight": torch.zeros(4, 3, 3, 3, dtype=torch.bfloat16),
              "g_a.0.conv1.bias": torch.zeros(4)}, path)
  assert cli.main(["convert", "tcm", str(path), str(tmp_path / "out")]) == 1
  err = capsys.readouterr().err
  assert f"{path} holds 1 bfloat16 tensors (g_a.0.conv1.weight)" in err
  assert len(err.strip().splitlines()) == 1


def test_infer_sizes_reads_named_tensors_of_a_state_dict():
  sd = {"g_a.0.conv1.weight": np.zeros((256, 3, 3, 3)), "h_a.0.conv1.weight": np.zeros((256, 192, 3, 3)),
        **{f"cc_mean_transforms.{k}.0.weight": np.zeros(1) for k in range(3)}}
  assert convert_tcm.infer_sizes(sd) == {"N": 128, "M": 192, "num_slices": 3}
  assert convert_tcm.infer_sizes({}) == {"N": None, "M": None, "num_slices": None}
  assert convert_tcm.resolve_sizes({}, N=64, M=320, num_slices=5) == {"N": 64, "M": 320,
                                                                       "num_slices": 5}
  with pytest.raises(CheckpointError, match="cannot read M from the state_dict"):
    convert_tcm.resolve_sizes({"g_a.0.conv1.weight": np.zeros((8, 3, 3, 3))}, num_slices=5)


def test_load_pth_reads_a_torch_checkpoint_with_module_prefix(tmp_path):
  torch = pytest.importorskip("torch")
  path = tmp_path / "ckpt.pth"
  w = np.arange(6, dtype=np.float32).reshape(2, 3)
  torch.save({"state_dict": {"module.g_a.9.weight": torch.from_numpy(w)}, "epoch": 3}, path)
  sd = pth.load_pth(path)
  assert list(sd) == ["g_a.9.weight"]
  np.testing.assert_array_equal(sd["g_a.9.weight"], w)


def test_load_pth_names_the_missing_file(tmp_path):
  with pytest.raises(CheckpointError, match="not found"):
    pth.load_pth(tmp_path / "nope.pth")
