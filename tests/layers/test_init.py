import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.layers import init
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


def test_torch_default_init_is_the_same_eager_jitted_and_under_eval_shape():
  params = {"conv": {"kernel": jnp.zeros((3, 3, 4, 5)), "bias": jnp.zeros((5,))},
            "table": jnp.ones((2, 3))}
  key = jax.random.key(7)
  eager = torch_default_init(params, key)
  jitted = jax.jit(torch_default_init)(params, key)
  for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
    np.testing.assert_array_equal(a, b)
  shapes = jax.eval_shape(torch_default_init, params, key)
  assert shapes["conv"]["kernel"].shape == (3, 3, 4, 5)
  other = torch_default_init(params, jax.random.key(8))
  assert not np.array_equal(eager["conv"]["kernel"], other["conv"]["kernel"])


def test_module_init_alone_gives_pytorch_like_kernels_eager_and_jitted():
  from icmh_jax.layers.conv import Conv
  x = jnp.zeros((1, 8, 8, 40))
  bound = 1 / np.sqrt(3 * 3 * 40)
  for params in (Conv(64, 3).init(jax.random.key(0), x),
                 jax.jit(Conv(64, 3).init)(jax.random.key(0), x)):
    kernel = np.asarray(params["params"]["kernel"])
    assert np.abs(kernel).max() <= bound
    assert abs(kernel.std() - bound / np.sqrt(3)) < 0.1 * bound
    np.testing.assert_array_equal(params["params"]["bias"], np.zeros(64))


def test_fan_in_uniform_draws_the_same_values_traced_as_on_the_host():
  # Traced, it is a host callback (cheap for Flax's per-param shape check); the draw must match.
  key, shape = jax.random.key(3), (3, 3, 4, 8)
  host = init.fan_in_uniform(key, shape)
  traced = jax.jit(lambda k: init.fan_in_uniform(k, shape))(key)
  np.testing.assert_array_equal(np.asarray(traced), host)
  bound = 1 / np.sqrt(3 * 3 * 4)
  assert np.abs(host).max() <= bound and abs(host.std() - bound / np.sqrt(3)) < 0.1 * bound
  assert jax.eval_shape(lambda: init.fan_in_uniform(key, (2, 5))) == jax.ShapeDtypeStruct(
      (2, 5), np.float32)
