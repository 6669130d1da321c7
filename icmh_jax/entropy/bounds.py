"""Bounds with compressai's gradients: `lower_bound` (LowerBound) and `ste_round`.

Both are used inside the rate terms of every model: `lower_bound` floors scales at 0.11 and
likelihoods at 1e-9 without killing the gradient that would lift a value back above the bound,
and `ste_round` quantises latents with a straight-through (identity) gradient.
"""

import jax
import jax.numpy as jnp


@jax.custom_vjp
def lower_bound(x, bound):
  """max(x, bound) whose gradient still flows where it would push x up (compressai LowerBound).

  Args:
    x: array of any shape.
    bound: scalar (or broadcastable array), same dtype as x.

  Returns:
    max(x, bound), shape of x. The gradient to x passes where x >= bound or where the incoming
    gradient is negative (gradient descent would then increase x); it is 0 elsewhere. No
    gradient reaches `bound`.
  """
  return jnp.maximum(x, jnp.asarray(bound, dtype=jnp.result_type(x)))


def _lower_bound_fwd(x, bound):
  bound = jnp.asarray(bound, dtype=jnp.result_type(x))
  return jnp.maximum(x, bound), (x, bound)


def _lower_bound_bwd(res, g):
  x, bound = res
  pass_through = (x >= bound) | (g < 0)
  return jnp.where(pass_through, g, jnp.zeros_like(g)), jnp.zeros_like(bound)


lower_bound.defvjp(_lower_bound_fwd, _lower_bound_bwd)


def ste_round(x):
  """Rounds half to even (like torch.round) with an identity (straight-through) gradient.

  Args:
    x: float array of any shape.

  Returns:
    jnp.round(x) in the forward pass; d/dx is 1.
  """
  return x + jax.lax.stop_gradient(jnp.round(x) - x)
