"""LayerNorm's hand-written backward against autodiff of flax's LayerNorm (the definition it
replaces), and its forward against flax's and against the formula in float64."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icmh_jax.layers.norm import LayerNorm


def _inputs(dtype, shape=(2, 5, 7, 24)):
  rng = np.random.default_rng(1)
  # An offset and spread per row: the two-pass variance matters, x̂ is not x.
  x = rng.normal(size=shape) * rng.uniform(0.1, 4, shape[:-1] + (1,)) + 3.0
  params = {"params": {"scale": jnp.asarray(rng.normal(size=shape[-1]), jnp.float32),
                       "bias": jnp.asarray(rng.normal(size=shape[-1]), jnp.float32)}}
  g = rng.normal(size=shape)
  return jnp.asarray(x, dtype), params, jnp.asarray(g, dtype)


def test_forward_is_flax_layernorm_and_the_formula():
  x, params, _ = _inputs(jnp.float32)
  ours = LayerNorm(epsilon=1e-5).apply(params, x)
  flax_ln = nn.LayerNorm(epsilon=1e-5, use_fast_variance=False).apply(params, x)
  np.testing.assert_allclose(ours, flax_ln, rtol=0, atol=2e-6)
  xd = np.asarray(x, np.float64)
  xhat = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-5)
  want = xhat * np.asarray(params["params"]["scale"]) + np.asarray(params["params"]["bias"])
  np.testing.assert_allclose(ours, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype, tol", [(jnp.float32, 2e-5), (jnp.bfloat16, 3e-2)])
def test_vjp_matches_autodiff_of_flax_layernorm(dtype, tol):
  x, params, g = _inputs(dtype)
  cast = lambda p: jax.tree.map(lambda a: a.astype(dtype), p)
  ours = lambda p, v: LayerNorm(epsilon=1e-5).apply(cast(p), v)
  ref = lambda p, v: nn.LayerNorm(epsilon=1e-5, use_fast_variance=False).apply(cast(p), v)
  y, vjp = jax.vjp(ours, params, x)
  y_ref, vjp_ref = jax.vjp(ref, params, x)
  assert y.dtype == y_ref.dtype == dtype
  (dp, dx), (dp_ref, dx_ref) = vjp(g), vjp_ref(g)
  assert dx.dtype == dtype
  f32 = lambda a: np.asarray(a, np.float32)
  np.testing.assert_allclose(f32(dx), f32(dx_ref), rtol=tol, atol=tol)
  for name in ("scale", "bias"):
    got, want = f32(dp["params"][name]), f32(dp_ref["params"][name])
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def test_params_are_flax_layernorms():
  x = jnp.zeros((1, 3, 3, 8))
  ours = jax.tree.map(np.asarray, LayerNorm().init(jax.random.key(0), x))
  ref = jax.tree.map(np.asarray, nn.LayerNorm().init(jax.random.key(0), x))
  assert jax.tree.structure(ours) == jax.tree.structure(ref)
  jax.tree.map(np.testing.assert_array_equal, ours, ref)
