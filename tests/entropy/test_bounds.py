"""LowerBound gradients and straight-through rounding."""

import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.entropy.bounds import lower_bound, ste_round


def test_lower_bound_forward_is_max_with_bound():
  x = jnp.asarray([-1.0, 0.05, 0.11, 0.2, 3.0])
  np.testing.assert_array_equal(lower_bound(x, 0.11), np.float32([0.11, 0.11, 0.11, 0.2, 3.0]))


def test_lower_bound_gradient_passes_above_bound_or_when_pushing_up():
  x = jnp.asarray([-1.0, 0.05, 0.11, 0.2, 3.0, -2.0])
  g = jnp.asarray([1.0, 1.0, 1.0, 1.0, 1.0, -3.0])  # incoming cotangents
  _, vjp = jax.vjp(lambda a: lower_bound(a, 0.11), x)
  (dx,) = vjp(g)
  # below the bound a positive cotangent (descent would push x further down) is blocked;
  # a negative one (descent pushes x up) passes; at and above the bound all pass.
  np.testing.assert_array_equal(dx, [0.0, 0.0, 1.0, 1.0, 1.0, -3.0])


def test_ste_round_rounds_half_to_even_with_identity_gradient():
  x = jnp.asarray([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -0.51])
  np.testing.assert_array_equal(ste_round(x), [-2.0, -2.0, -0.0, 0.0, 2.0, 2.0, 0.0, -1.0])
  g = jax.grad(lambda a: jnp.sum(ste_round(a) * jnp.arange(8.0)))(x)
  np.testing.assert_array_equal(g, np.arange(8.0))
