"""LayerNorm over the channel axis, torch's definition, with a backward that keeps only its input.

Forward as `flax.linen.LayerNorm(use_fast_variance=False)` computes it, op for op: two-pass
(biased) variance in at least float32, y = (x - μ) · (rsqrt(σ² + eps) · scale) + bias, cast back
to the dtype of x and the params. Autodiff of that keeps x - μ, its product with the row scale and
the normalised x alive until the backward, three tensors of x's size per norm; here the backward
keeps x and the per-row μ and 1/σ and recomputes x̂ = (x - μ)/σ:

  dx = (1/σ) (ĝ - mean(ĝ) - x̂ mean(ĝ x̂)),  ĝ = g · scale;  dscale = Σ g x̂;  dbias = Σ g.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp


def _stats(x, epsilon):
  xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  mean = jnp.mean(xf, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)
  return xf, mean, jax.lax.rsqrt(var + epsilon)


def _out_dtype(x, scale, bias):
  return jnp.result_type(x, scale, bias)


def _forward(x, scale, bias, epsilon):
  xf, mean, rstd = _stats(x, epsilon)
  y = (xf - mean) * (rstd * scale) + bias
  return y.astype(_out_dtype(x, scale, bias)), (x, mean, rstd, scale, bias)


def _backward(epsilon, res, g):
  del epsilon
  x, mean, rstd, scale, bias = res
  xf = x.astype(mean.dtype)
  xhat = (xf - mean) * rstd
  gf = g.astype(mean.dtype)
  gs = gf * scale
  dx = rstd * (gs - jnp.mean(gs, axis=-1, keepdims=True)
               - xhat * jnp.mean(gs * xhat, axis=-1, keepdims=True))
  rows = tuple(range(x.ndim - 1))
  return (dx.astype(x.dtype), jnp.sum(gf * xhat, axis=rows).astype(scale.dtype),
          jnp.sum(gf, axis=rows).astype(bias.dtype))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _layer_norm(x, scale, bias, epsilon):
  return _forward(x, scale, bias, epsilon)[0]


_layer_norm.defvjp(_forward, _backward)


def layer_norm(x, scale, bias, epsilon: float):
  """x: [..., C]; scale, bias: [C] -> [..., C], normalised over the last axis."""
  return _layer_norm(x, scale, bias, float(epsilon))


class LayerNorm(nn.Module):
  """Drop-in for `nn.LayerNorm(epsilon, use_fast_variance=False)` over the last axis: the same
  params (`scale` ones, `bias` zeros, [C]) and numbers, the leaner backward above."""
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x):
    """x: [..., C] -> [..., C]."""
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    return layer_norm(x, scale, bias, self.epsilon)
