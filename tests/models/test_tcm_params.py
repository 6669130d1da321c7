"""TCM parameter counts against the reference (golden JSON) and the paper's Table II."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icmh_jax.models.tcm import TCM


def _count(model) -> tuple[int, int]:
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 128, 128, 3)))
  leaves = jax.tree_util.tree_leaves(shapes)
  return int(sum(np.prod(a.shape) for a in leaves)), len(leaves)


@pytest.mark.parametrize("n", [32, 64, 128])
def test_tcm_parameter_count_equals_reference(reference_dir, n):
  meta = json.loads((reference_dir / "tcm" / "tcm_golden.json").read_text())
  expected = meta["param_counts"][str(n)]
  count, tensors = _count(TCM(N=n))
  assert count == expected["all_parameters"]
  assert tensors == expected["n_parameter_tensors"]


@pytest.mark.parametrize("na,g_s_in,expected", [
    (3, 320, 58_723_412), (4, 320, 67_015_828),  # ICMH-FF / FR-ICMH additional codec
    (3, None, 56_364_116), (4, None, 65_836_180),  # PR-ICMH additional codec
])
def test_additional_codec_parameter_counts_match_design_table(na, g_s_in, expected):
  count, _ = _count(TCM(N=128, M=64 * na, num_slices=na, g_s_in=g_s_in))
  assert count == expected
