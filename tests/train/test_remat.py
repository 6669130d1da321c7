"""config.remat: ConvTransBlocks are recomputed in the backward, the gradients unchanged; and the
window attention's own backward recomputes its maps instead of keeping them."""

import importlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.ad_checkpoint import print_saved_residuals

from icmh_jax.errors import ConfigError
from icmh_jax.layers import ConvTransBlock, attention, remat
from icmh_jax.models import registry
from icmh_jax.train import optim, step

WS = 4  # attention maps end in [ws², ws²] = [16, 16]


def _perturbed(params, seed):
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(tree, [a + 0.1 * jax.random.normal(k, a.shape)
                                   for a, k in zip(leaves, keys)])


def _reference_attend(q, k, v, bias, *, scale, mask):
  """The textbook formula, differentiated by plain autodiff."""
  logits = jnp.einsum("bnhpc,bnhqc->bnhpq", q, k) * scale + bias
  if mask is not None:
    logits = jnp.where(mask, -jnp.inf, logits)
  return jnp.einsum("bnhpq,bnhqc->bnhpc", jax.nn.softmax(logits, axis=-1), v)


def _reference_windows(qkv, bias, heads, mask):
  """`_attend_windows` by the textbook formula, all windows at once, plain autodiff."""
  b, n_w, t, c3 = qkv.shape
  q, k, v = qkv.reshape(b, n_w, t, 3, heads, c3 // 3 // heads).transpose(3, 0, 1, 4, 2, 5)
  out = _reference_attend(q, k, v, bias, scale=0.3,
                          mask=None if mask is None else mask[None, :, None])
  return out.transpose(0, 1, 3, 2, 4).reshape(b, n_w, t, c3 // 3)


def test_attention_backward_matches_autodiff_and_keeps_no_maps(capsys):
  heads, hd = 2, 4
  ks = jax.random.split(jax.random.key(0), 3)
  qkv = jax.random.normal(ks[0], (2, 4, WS * WS, 3 * heads * hd))
  bias = jax.random.normal(ks[1], (heads, WS * WS, WS * WS))
  g = jax.random.normal(ks[2], (2, 4, WS * WS, heads * hd))
  for m in (None, attention.shifted_window_mask(2, 2, WS)):
    ours = lambda qkv, bias: jnp.sum(g * attention._attend_windows(  # noqa: E731
        qkv, bias, heads, scale=0.3, mask=m))
    ref = lambda qkv, bias: jnp.sum(g * _reference_windows(qkv, bias, heads, m))  # noqa: E731
    np.testing.assert_allclose(ours(qkv, bias), ref(qkv, bias), rtol=1e-5)
    for a, b in zip(jax.jit(jax.grad(ours, (0, 1)))(qkv, bias),
                    jax.jit(jax.grad(ref, (0, 1)))(qkv, bias)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

    print_saved_residuals(ours, qkv, bias)
    out = capsys.readouterr().out
    assert not re.search(rf"f32\[(\d+,){{2,}}{WS * WS},{WS * WS}\]", out)  # no [.., T, T] map
    assert "f32[2,4,16,24] from the argument qkv" in out  # what it keeps: qkv ...
    assert re.search(r"f32\[2,4,16,8\] output of scan", out)  # ... and its output


def test_windows_in_chunks_match_all_at_once_with_gradients_through_the_mask():
  """`_attend_windows` evaluates and differentiates chunks of windows (24 per image here: 2
  chunks of 12 each, the mask split with them); both equal the textbook formula."""
  heads, hd, n_w = 2, 4, 24
  assert n_w > attention.WINDOWS_PER_CHUNK
  ks = jax.random.split(jax.random.key(0), 3)
  qkv = jax.random.normal(ks[0], (2, n_w, WS * WS, 3 * heads * hd))
  bias = jax.random.normal(ks[1], (heads, WS * WS, WS * WS))
  g = jax.random.normal(ks[2], (2, n_w, WS * WS, heads * hd))
  mask = attention.shifted_window_mask(4, 6, WS)
  reference = lambda qkv, bias: _reference_windows(qkv, bias, heads, mask)  # noqa: E731
  ours = lambda qkv, bias: attention._attend_windows(qkv, bias, heads, scale=0.3, mask=mask)  # noqa: E731
  np.testing.assert_allclose(ours(qkv, bias), reference(qkv, bias), rtol=1e-5, atol=1e-6)
  loss = lambda f: lambda *a: jnp.sum(g * f(*a))  # noqa: E731
  for a, b in zip(jax.jit(jax.grad(loss(ours), (0, 1)))(qkv, bias),
                  jax.jit(jax.grad(loss(reference), (0, 1)))(qkv, bias)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def _block_loss(block, enabled):
  def f(params, x):
    with remat.checkpoint_blocks("block" if enabled else None):
      return jnp.sum(jnp.sin(block.apply(params, x)))
  return f


@pytest.mark.slow  # moved out of the default suite (its 5-minute budget)
def test_checkpointed_block_keeps_the_gradients_and_only_its_input(capsys):
  block = ConvTransBlock(4, 4, head_dim=4, window_size=WS, shifted=True)
  x = jax.random.normal(jax.random.key(0), (2, 8, 12, 8))
  params = _perturbed(block.init(jax.random.key(1), x), 2)
  g_plain = jax.jit(jax.grad(_block_loss(block, False), argnums=(0, 1)))(params, x)
  g_remat = jax.jit(jax.grad(_block_loss(block, True), argnums=(0, 1)))(params, x)
  for a, b in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_remat)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

  def saved(enabled):
    print_saved_residuals(_block_loss(block, enabled), params, x)
    return [line for line in capsys.readouterr().out.splitlines() if "f32[2," in line]
  activations = saved(False)
  assert len(activations) > 5  # conv inputs, q, k, v, ...
  kept = saved(True)
  # Under remat, the only batch-sized residuals are the block's input and the sin' factor.
  assert all("f32[2,8,12,8]" in line for line in kept) and 1 <= len(kept) <= 2, kept


def test_transformer_scope_recomputes_only_the_swin_branch(capsys):
  """remat_scope "transformer": the same gradients; the Swin branch's MLP hidden ([.., 4C]) is
  no longer kept, the conv branch's activations still are."""
  block = ConvTransBlock(4, 4, head_dim=4, window_size=WS)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 8))
  params = _perturbed(block.init(jax.random.key(1), x), 2)

  def loss(scope):
    def f(params, x):
      with remat.checkpoint_blocks(scope):
        return jnp.sum(jnp.sin(block.apply(params, x)))
    return f
  g_plain = jax.grad(loss(None), argnums=(0, 1))(params, x)
  g_swin = jax.grad(loss("transformer"), argnums=(0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_swin)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

  def saved(scope):
    print_saved_residuals(loss(scope), params, x)
    return capsys.readouterr().out
  plain, swin = saved(None), saved("transformer")
  assert "f32[2,8,8,16]" in plain and "f32[2,8,8,16]" not in swin  # MLP hidden, 4 x 4
  assert "f32[2,8,8,4]" in swin  # the conv branch keeps its activations
  with pytest.raises(ValueError, match="remat scope must be one of"):
    with remat.checkpoint_blocks("everything"):
      pass


@pytest.mark.slow  # two compiles of the whole step
def test_tiny_tcm_train_step_is_the_same_under_remat():
  config = importlib.import_module("configs.tcm").get_config("tiny")
  system = registry.get_system(config.system, config.model)
  x = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
  runs = {}
  for enabled in (False, True):
    config.remat = enabled
    state = optim.create_train_state(system.init(jax.random.key(0), (64, 64, 3)),
                                     system.trainable_key())
    train = step.make_train_step(step.make_mesh(jax.devices()[:1]), system=system, config=config)
    runs[enabled] = train(state, {"image": x}, jax.random.key(1))
  (s0, m0), (s1, m1) = runs[False], runs[True]
  np.testing.assert_allclose(float(m1["loss"]), float(m0["loss"]), rtol=1e-6)
  np.testing.assert_allclose(float(m1["grad_norm"]), float(m0["grad_norm"]), rtol=1e-4)
  for a, b in zip(jax.tree.leaves(s0.params), jax.tree.leaves(s1.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_remat_is_on_by_default_only_for_wide_codecs_and_an_explicit_value_wins():
  from icmh_jax import config_files
  assert step.remat_enabled(config_files.load("configs/tcm.py"))  # N = 128, the paper's
  assert step.remat_enabled(config_files.load("configs/pr_icmh.py"))  # additional codec N = 128
  assert not step.remat_enabled(config_files.load("configs/tcm.py:N=64"))
  assert not step.remat_enabled(config_files.load("configs/tcm.py:tiny"))
  assert step.remat_enabled(config_files.load("configs/tcm.py:N=64", {"remat": True}))
  assert not step.remat_enabled(config_files.load("configs/tcm.py", ["remat=False"]))
  assert step.remat_scope(config_files.load("configs/tcm.py")) == "transformer"
  assert step.remat_scope(config_files.load("configs/tcm.py", ["remat_scope=block"])) == "block"
  assert step.remat_scope(config_files.load("configs/tcm.py:N=64")) is None
  with pytest.raises(ConfigError, match="remat_scope='all' is not allowed"):
    step.remat_scope(config_files.load("configs/tcm.py", ["remat_scope=all"]))
