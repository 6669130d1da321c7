"""The fast-gradient conv equals XLA's convolution and its autodiff (issue 13: speed, same numbers)."""

import functools
import importlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from icmh_jax.layers.conv import Conv

conv_module = importlib.import_module("icmh_jax.layers.conv")  # `layers.conv` is also a function


@pytest.fixture(autouse=True, params=["row patches", "xla"])
def filter_grad_path(request, monkeypatch):
  """Every test runs with both filter gradients: row-patch matmuls (CPU with YNNPACK's
  convolutions) and XLA's own (training processes, accelerators)."""
  monkeypatch.setattr(conv_module, "row_patch_filter_grad", lambda: request.param == "row patches")
  return request.param


def _reference(kernel_size, stride, features):
  p = kernel_size // 2
  return nn.Conv(features, (kernel_size, kernel_size), strides=(stride, stride),
                 padding=((p, p), (p, p)))


def _params(kernel_size, c_in, features, seed=0):
  k1, k2 = jax.random.split(jax.random.key(seed))
  return {"params": {
      "kernel": jax.random.normal(k1, (kernel_size, kernel_size, c_in, features)),
      "bias": jax.random.normal(k2, (features,))}}


@pytest.mark.parametrize("kernel_size", [1, 3])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape", [(2, 9, 7, 5), (1, 16, 12, 8)])
def test_conv_and_its_gradients_equal_xla_autodiff(kernel_size, stride, shape):
  x = jax.random.normal(jax.random.key(1), shape)
  params = _params(kernel_size, shape[-1], 6)
  ours, ref = Conv(6, kernel_size, stride), _reference(kernel_size, stride, 6)
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))
  np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), atol=2e-5)
  g_ours = jax.grad(loss(ours), argnums=(0, 1))(params, x)
  g_ref = jax.grad(loss(ref), argnums=(0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, atol=5e-5, rtol=1e-5)


def test_filter_gradient_sums_over_vmapped_examples():
  """The train step vmaps the model over examples with shared params: the kernel's gradient is
  the sum of the per-example gradients, as for XLA's conv."""
  x = jax.random.normal(jax.random.key(2), (3, 8, 8, 4))
  params = _params(3, 4, 5)
  per_example = lambda m: lambda p: jnp.sum(jax.vmap(lambda xi: jnp.sin(m.apply(p, xi[None])))(x))
  g_ours = jax.grad(per_example(Conv(5, 3, 1)))(params)
  g_ref = jax.grad(per_example(_reference(3, 1, 5)))(params)
  np.testing.assert_allclose(g_ours["params"]["kernel"], g_ref["params"]["kernel"], atol=5e-5)


def test_filter_gradient_inside_shard_map_matches_xla():
  """Inside shard_map the kernel is replicated and the batch varies: the custom gradient must be
  summed over the data axis exactly as autodiff sums the built-in conv's."""
  mesh = Mesh(np.asarray(jax.devices()[:1]), ("data",))
  x = jax.random.normal(jax.random.key(3), (2, 8, 8, 4))
  params = _params(3, 4, 5)

  def grads(m):
    fn = lambda p, x: jax.grad(lambda p: jnp.sum(jnp.sin(m.apply(p, x))))(p)
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(P(), P("data")), out_specs=P()))(
        params, x)
  # out_specs P() needs a replicated gradient: both must be summed over "data" (psum) by autodiff.
  np.testing.assert_allclose(grads(Conv(5, 3, 1))["params"]["kernel"],
                             grads(_reference(3, 1, 5))["params"]["kernel"], atol=5e-5)
