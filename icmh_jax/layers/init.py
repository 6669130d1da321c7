"""PyTorch's default initialisation of Conv2d / Linear, applied to a Flax parameter tree.

The reference (LIC-TCM on PyTorch) trains from weight and bias ~ U(±1/sqrt(fan_in)). Flax's
defaults (lecun_normal kernels, zero biases) are sqrt(3)x wider and bias-free: through LIC-TCM's
doubled identity paths the untrained x_hat then explodes (std ~1e4 at N = 32), and the first
hundreds of steps only undo it. Applying this once after `init` starts where the reference starts.
"""

import jax
import numpy as np


def torch_default_init(params: dict, key: jax.Array) -> dict:
  """Re-draws every {kernel, bias} pair (Dense [in, out], Conv [kh, kw, in, out]) like PyTorch.

  Args:
    params: a parameter tree (nested dicts); other leaves (GDN, entropy models, attention tables)
      keep their own initialisation.
    key: PRNG key; each layer's draw is folded from its position in the sorted tree.

  Returns:
    A tree of the same structure.
  """
  def walk(node, key):
    if not isinstance(node, dict):
      return node
    kernel, bias = node.get("kernel"), node.get("bias")
    if kernel is not None and bias is not None and kernel.ndim in (2, 4):
      bound = 1.0 / np.sqrt(np.prod(kernel.shape[:-1]))
      k_w, k_b = jax.random.split(key)
      return {**node,
              "kernel": jax.random.uniform(k_w, kernel.shape, kernel.dtype, -bound, bound),
              "bias": jax.random.uniform(k_b, bias.shape, bias.dtype, -bound, bound)}
    return {name: walk(child, jax.random.fold_in(key, i))
            for i, (name, child) in enumerate(sorted(node.items()))}
  return walk(params, key)
