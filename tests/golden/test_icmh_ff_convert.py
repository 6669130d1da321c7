import json

import numpy as np
import pytest

from icmh_jax.convert import icmh_ff as convert
from icmh_jax.convert.tcm import to_reference
from icmh_jax.errors import CheckpointError
from icmh_jax.golden import icmh_ff as golden
from icmh_jax.models import registry


@pytest.fixture(scope="module")
def golden_sds(reference_dir):
  d = reference_dir / "icmh_ff"
  meta = json.loads((d / "icmh_ff_golden.json").read_text())
  return meta, golden.rebuild_state_dicts(meta, np.load(d / "icmh_ff_golden.npz"))


@pytest.mark.slow  # moved out of the default suite (its 5-minute budget)
def test_both_branches_convert_and_convert_back_to_the_same_parameters(golden_sds):
  meta, sds = golden_sds
  system = registry.get_system("icmh_ff", golden.model_config(meta))
  params = convert.from_reference(system, sds["machine"], sds["additional"])
  for branch, key in (("machine", "base"), ("additional", "additional")):
    back = to_reference(params[key])
    assert back and set(back) <= set(sds[branch])
    for k, v in back.items():
      np.testing.assert_array_equal(v, sds[branch][k], err_msg=k)
  # The parameters alone (no buffers) of the additional branch are the JSON's count.
  n = sum(v.size for v in to_reference(params["additional"]).values())
  assert n == meta["param_counts"]["N32_m3"]["additional_ICA"]


@pytest.mark.slow  # moved out of the default suite (its 5-minute budget)
def test_branch_of_another_size_lists_shape_mismatches(golden_sds):
  meta, sds = golden_sds
  system = registry.get_system("icmh_ff", {**golden.model_config(meta), "num_slices_a": 2})
  # 64 * 2 additional channels where the set has 64 * 3: the first slice's support is narrower.
  with pytest.raises(CheckpointError,
                     match=r"shape mismatches \(\d+\): atten_mean\.0\.0\.in_conv\.weight: "
                           r"checkpoint \(128, 192, 1, 1\) vs model \(1, 1, 128, 128\)"):
    convert.from_reference(system, sds["machine"], sds["additional"])


def test_machine_only_system_refuses_an_additional_state_dict(golden_sds):
  meta, sds = golden_sds
  system = registry.get_system("sa_icm", golden.model_config(meta))
  with pytest.raises(ValueError, match="sa_icm has no additional state_dict"):
    convert.from_reference(system, sds["machine"], sds["additional"])
  assert set(convert.from_reference(system, sds["machine"])) == {"base"}
