"""PyTorch's default initialisation of Conv2d / Linear, applied to a Flax parameter tree.

The reference (LIC-TCM on PyTorch) trains from weight and bias ~ U(±1/sqrt(fan_in)). Flax's
defaults (lecun_normal kernels, zero biases) are sqrt(3)x wider and bias-free: through LIC-TCM's
doubled identity paths the untrained x_hat then explodes (std ~1e4 at N = 32), and the first
hundreds of steps only undo it. Applying this once after `init` starts where the reference starts.

The draws are made on the host with numpy: drawn with `jax.random` op by op, every distinct
kernel shape compiled a program of its own (hundreds per model, minutes before the first step),
and jitting the whole init compiled for longer still. For the same reason the modules' own
initializers (`fan_in_uniform` kernels, `host_zeros` biases) draw on the host when the key is
concrete, so `Module.init` alone also gives a working, PyTorch-like network.
"""

import jax
import jax.numpy as jnp
import numpy as np


def host_zeros(key, shape, dtype=jnp.float32):
  """Zeros allocated on the host (a Flax initializer that compiles nothing): biases before
  `torch_default_init` draws them."""
  del key
  return np.zeros(shape, dtype)


def fan_in_uniform(key, shape, dtype=jnp.float32):
  """PyTorch's default Conv2d / Linear weight init, U(±1/sqrt(fan_in)) with fan_in = every axis
  but the last; numpy on the host, through a callback under tracing.

  The callback keeps the trace one op: Flax checks every param's shape in `apply` by tracing its
  initializer (`jax.eval_shape`), and a traced `jax.random.uniform` there was about a seventh of
  the tracing of a new process's first encode (0.5 of 3.4 s under cProfile).
  """
  bound = 1.0 / np.sqrt(np.prod(shape[:-1]))
  draw = lambda d: np.random.default_rng(_seed(d)).uniform(-bound, bound, shape).astype(dtype)
  data = _key_data(key)
  if isinstance(data, jax.core.Tracer):
    return jax.pure_callback(draw, jax.ShapeDtypeStruct(shape, dtype), data)
  return draw(data)


def _key_data(key):
  return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key


def _seed(data) -> list[int]:
  """A numpy seed from concrete PRNG key data."""
  return [int(v) for v in np.asarray(data).ravel()]


def torch_default_init(params: dict, key: jax.Array) -> dict:
  """Re-draws every {kernel, bias} pair (Dense [in, out], Conv [kh, kw, in, out]) like PyTorch.

  Args:
    params: a parameter tree (nested dicts); other leaves (GDN, entropy models, attention tables)
      keep their own initialisation.
    key: PRNG key; each layer's draw is seeded by the key and its position in the sorted tree.

  Returns:
    A tree of the same structure. Traced (under `jax.eval_shape` or `jit`) the same draws are
    made on the host through a callback.
  """
  data = _key_data(key)
  if isinstance(data, jax.core.Tracer):
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)
    return jax.pure_callback(lambda d, p: jax.device_get(_draw(p, d)), shapes, data, params)
  return _draw(params, data)


def _draw(params, data):
  seed = _seed(data)

  def walk(node, path):
    if not isinstance(node, dict):
      return node
    kernel, bias = node.get("kernel"), node.get("bias")
    if kernel is not None and bias is not None and kernel.ndim in (2, 4):
      bound = 1.0 / np.sqrt(np.prod(kernel.shape[:-1]))
      rng = np.random.default_rng([*seed, *path])
      draw = lambda a: jnp.asarray(rng.uniform(-bound, bound, a.shape).astype(a.dtype))
      return {**node, "kernel": draw(kernel), "bias": draw(bias)}
    return {name: walk(child, path + (i,)) for i, (name, child) in enumerate(sorted(node.items()))}
  return walk(params, ())
