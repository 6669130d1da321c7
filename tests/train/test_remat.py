"""config.remat: the attention maps are recomputed in the backward, the gradients unchanged."""

import re

import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import print_saved_residuals

from icmh_jax.layers import attention

WS = 4  # attention maps end in [ws², ws²] = [16, 16]


def _loss(block, remat):
  def f(params, x):
    with attention.recompute_maps(remat):
      return jnp.sum(jnp.sin(block.apply(params, x)))
  return f


def test_remat_keeps_the_gradients_and_drops_the_attention_maps(capsys):
  block = attention.SwinBlock(dim=8, head_dim=4, window_size=WS, shifted=True)
  x = jax.random.normal(jax.random.key(0), (2, 8, 12, 8))
  params = block.init(jax.random.key(1), x)
  params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(2), a.shape), params)
  g_plain = jax.grad(_loss(block, False))(params, x)
  g_remat = jax.grad(_loss(block, True))(params, x)
  for a, b in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_remat)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)

  def saved(remat):
    print_saved_residuals(_loss(block, remat), params, x)
    return capsys.readouterr().out
  # A float map [B, windows, heads, ws², ws²]: kept without remat, recomputed with it.
  attention_map = re.compile(rf"f32\[\d+,\d+,\d+,{WS * WS},{WS * WS}\]")
  assert attention_map.search(saved(False))
  assert not attention_map.search(saved(True))
