import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.layers.init import torch_default_init


def test_torch_default_init_draws_weights_and_biases_within_the_fan_in_bound():
  params = {"conv": {"kernel": jnp.zeros((3, 3, 40, 64)), "bias": jnp.zeros((64,))},
            "dense": {"kernel": jnp.zeros((250, 30)), "bias": jnp.zeros((30,))},
            "gdn": {"beta": jnp.ones((8,)), "gamma": jnp.eye(8)}}
  out = torch_default_init(params, jax.random.key(0))
  for name, fan_in in (("conv", 360), ("dense", 250)):
    bound = 1 / np.sqrt(fan_in)
    for leaf in ("kernel", "bias"):
      v = np.asarray(out[name][leaf])
      assert np.abs(v).max() <= bound
      assert abs(v.std() - bound / np.sqrt(3)) < 0.15 * bound  # U(-b, b) has std b / sqrt(3)
  np.testing.assert_array_equal(out["gdn"]["gamma"], np.eye(8))  # other leaves untouched
  assert not np.array_equal(out["conv"]["kernel"][..., 0], out["conv"]["kernel"][..., 1])
