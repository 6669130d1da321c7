"""`icmh convert tcm`: a reference state_dict becomes a params directory the registry loads."""

import json

import jax
import numpy as np
import pytest

from icmh_jax import cli
from icmh_jax.convert import pth
from icmh_jax.golden import tcm as golden_tcm


@pytest.fixture(scope="module")
def golden_state_dict(reference_dir):
  d = reference_dir / "tcm"
  meta = json.loads((d / "tcm_golden.json").read_text())
  return golden_tcm.rebuild_state_dict(meta, np.load(d / "tcm_golden.npz"))


def test_cli_convert_writes_params_the_registry_loads(tmp_path, golden_state_dict):
  from icmh_jax.models import registry
  src = tmp_path / "tcm_sd.npz"
  np.savez(src, **golden_state_dict)
  out = tmp_path / "tcm_n32"
  assert cli.main(["convert", "tcm", str(src), str(out), "--N", "32"]) == 0
  system, params = registry.load_system(str(out))
  assert system.name == "tcm"
  base = params["base"]
  np.testing.assert_array_equal(np.asarray(base["g_a"]["0"]["conv1"]["kernel"]),
                                golden_state_dict["g_a.0.conv1.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(
      np.asarray(base["ch_arm"]["lrp_transforms_4"]["4"]["bias"]),
      golden_state_dict["lrp_transforms.4.4.bias"])
  assert len(jax.tree_util.tree_leaves(base)) == 1245


def test_cli_convert_with_wrong_width_exits_1_naming_the_mismatch(tmp_path, golden_state_dict,
                                                                 capsys):
  src = tmp_path / "tcm_sd.npz"
  np.savez(src, **{k: v for k, v in golden_state_dict.items() if k.startswith("g_a.0.")})
  assert cli.main(["convert", "tcm", str(src), str(tmp_path / "out"), "--N", "64"]) == 1
  err = capsys.readouterr().err
  assert "shape mismatches" in err and "g_a.0.conv1.weight" in err and "missing keys" in err


def test_load_pth_reads_a_torch_checkpoint_with_module_prefix(tmp_path):
  torch = pytest.importorskip("torch")
  path = tmp_path / "ckpt.pth"
  w = np.arange(6, dtype=np.float32).reshape(2, 3)
  torch.save({"state_dict": {"module.g_a.9.weight": torch.from_numpy(w)}, "epoch": 3}, path)
  sd = pth.load_pth(path)
  assert list(sd) == ["g_a.9.weight"]
  np.testing.assert_array_equal(sd["g_a.9.weight"], w)


def test_load_pth_names_the_missing_file(tmp_path):
  from icmh_jax.errors import CheckpointError
  with pytest.raises(CheckpointError, match="not found"):
    pth.load_pth(tmp_path / "nope.pth")
