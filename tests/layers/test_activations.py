"""GELU's hand-written gradient against the analytic derivative and against autodiff of its
formula."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.layers.activations import gelu


def test_gelu_gradient_is_the_analytic_derivative():
  x = np.linspace(-6, 6, 241).astype(np.float32)
  got = jax.grad(lambda v: jnp.sum(gelu(v)))(jnp.asarray(x))
  xd = x.astype(np.float64)
  erf = np.vectorize(math.erf)
  want = 0.5 * (1 + erf(xd / np.sqrt(2))) + xd * np.exp(-xd * xd / 2) / np.sqrt(2 * np.pi)
  np.testing.assert_allclose(got, want, atol=2e-6)


def test_gelu_vjp_matches_autodiff_of_its_formula():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(4, 8, 16)).astype(np.float32) * 3)
  g = jnp.asarray(rng.normal(size=x.shape).astype(np.float32))
  formula = lambda v: 0.5 * v * (1.0 + jax.lax.erf(v * np.float32(2 ** -0.5)))
  np.testing.assert_allclose(gelu(x), formula(x), rtol=0, atol=0)
  np.testing.assert_allclose(jax.vjp(gelu, x)[1](g)[0], jax.vjp(formula, x)[1](g)[0],
                             rtol=1e-6, atol=1e-6)
