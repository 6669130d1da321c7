"""The LIC-TCM key table: Flax params <-> reference state_dict, both directions."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icmh_jax.convert import tcm as convert_tcm
from icmh_jax.errors import CheckpointError
from icmh_jax.models.tcm import TCM


def _template(model, size=128):
  return jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)))["params"]


def test_flax_keys_and_shapes_are_exactly_the_reference_parameters(reference_dir):
  meta = json.loads((reference_dir / "tcm" / "tcm_golden.json").read_text())
  kw = meta["model"]["kwargs"]
  ref = {k: tuple(s) for k, s in meta["weights"]["state_dict_order"]
         if not convert_tcm.is_buffer(k)}
  ours = convert_tcm.reference_shapes(_template(TCM(N=kw["N"], M=kw["M"],
                                                    num_slices=kw["num_slices"])))
  assert ours == ref
  buffers = [k for k, _ in meta["weights"]["state_dict_order"] if convert_tcm.is_buffer(k)]
  assert len(ref) + len(buffers) == meta["param_counts"][str(kw["N"])]["n_state_dict_keys"]


@pytest.mark.parametrize("kw", [dict(N=32, M=128, num_slices=2),
                                dict(N=32, M=128, num_slices=2, g_s_in=320)])
def test_round_trip_reference_and_back_is_identity(kw):
  model = TCM(**kw, inter_dim=16, cc_hidden=(16, 8))
  template = _template(model, 64)
  rng = np.random.default_rng(3)
  leaves = [rng.standard_normal(t.shape).astype(np.float32)
            for t in jax.tree_util.tree_leaves(template)]
  params = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)
  sd = convert_tcm.to_reference(params)
  # Layout rules: conv kernels OIHW, linear (out, in).
  k = params["g_a"]["0"]["conv1"]["kernel"]
  np.testing.assert_array_equal(sd["g_a.0.conv1.weight"], k.transpose(3, 2, 0, 1))
  d = params["g_a"]["1"]["trans_block"]["msa"]["embedding_layer"]["kernel"]
  np.testing.assert_array_equal(sd["g_a.1.trans_block.msa.embedding_layer.weight"], d.T)
  np.testing.assert_array_equal(sd["atten_mean.1.0.in_conv.bias"],
                                params["ch_arm"]["atten_mean_1"]["in_conv"]["bias"])
  back = convert_tcm.from_reference(sd, template)
  jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)


def test_mismatched_state_dict_lists_missing_unexpected_and_shapes():
  model = TCM(N=32, M=128, num_slices=2, inter_dim=16, cc_hidden=(16, 8))
  template = _template(model, 64)
  sd = convert_tcm.to_reference(jax.tree_util.tree_map(lambda t: np.zeros(t.shape, np.float32),
                                                       template))
  sd.pop("g_s.9.0.bias")
  sd["g_a.99.weight"] = np.zeros(3, np.float32)
  sd["h_a.3.weight"] = np.zeros((1, 2, 3, 3), np.float32)
  sd["g_a.0.gdn.beta_reparam.pedestal"] = np.zeros(1, np.float32)  # a buffer: ignored
  with pytest.raises(CheckpointError) as e:
    convert_tcm.from_reference(sd, template)
  msg = str(e.value)
  assert "missing keys (1): g_s.9.0.bias" in msg
  assert "unexpected keys (1): g_a.99.weight" in msg
  assert "h_a.3.weight: checkpoint (1, 2, 3, 3)" in msg
