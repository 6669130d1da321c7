"""The raveled optimiser step against optax's per-leaf recipe it replaces, and the schedule."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from icmh_jax.errors import ConfigError
from icmh_jax.train import optim


def _config(milestones=(2, 4), gamma=0.5):
  return ml_collections.ConfigDict(dict(
      loss=dict(lam=0.01), optim=dict(lr=1e-2, aux_lr=3e-2, clip_norm=1.0),
      schedule=dict(milestones=milestones, gamma=gamma)))


def _labels(tree):
  """LIC_TCM train.py's split: "aux" for the quantiles, "main" for every other parameter."""
  return {"eb": {"quantiles": "aux", "filters": "main"}, "g_a": {"kernel": "main", "bias": "main"}}


def _tree(rng):
  return {"eb": {"quantiles": rng.normal(size=(3, 1, 3)).astype(np.float32),
                 "filters": rng.normal(size=(3, 2)).astype(np.float32)},
          "g_a": {"kernel": rng.normal(size=(2, 2, 3, 4)).astype(np.float32),
                  "bias": rng.normal(size=(4,)).astype(np.float32)}}


def test_raveled_update_is_per_leaf_adam_with_clipping_and_the_aux_split():
  """LIC_TCM's recipe written leaf by leaf with optax (what the step did before it raveled):
  clip the main gradient, Adam(lr schedule) on non-quantiles, Adam(aux_lr) on the quantiles with
  clipped main + aux gradient. Five steps cross both milestones."""
  config = _config()
  rng = np.random.default_rng(0)
  params = jax.tree.map(jnp.asarray, _tree(rng))
  schedule = optax.piecewise_constant_schedule(1e-2, {2: 0.5, 4: 0.5})
  main = optax.multi_transform({"main": optax.adam(schedule), "aux": optax.set_to_zero()},
                               _labels)
  aux = optax.multi_transform({"main": optax.set_to_zero(), "aux": optax.adam(3e-2)},
                              _labels)
  ref, ref_main, ref_aux = params, main.init(params), aux.init(params)
  state = optim.create_train_state({"t": params}, "t")
  ours, opt_state, aux_state = params, state.opt_state, state.aux_opt_state
  h = optim.hyper(config)
  for step in range(5):
    grads = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape) * 3, jnp.float32), ref)
    aux_grads = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), jnp.float32), ref)
    norm = optax.tree.norm(grads)
    clipped = jax.tree.map(lambda g: g * jnp.minimum(1.0, 1.0 / (norm + 1e-12)), grads)
    u, ref_main = main.update(clipped, ref_main, ref)
    ref = optax.apply_updates(ref, u)
    u, ref_aux = aux.update(jax.tree.map(jnp.add, clipped, aux_grads), ref_aux, ref)
    ref = optax.apply_updates(ref, u)
    flat_grads = jax.flatten_util.ravel_pytree(grads)[0]
    ours, opt_state, aux_state, grad_norm, lr = optim.update(
        ours, opt_state, aux_state, flat_grads, aux_grads, h, jnp.int32(step), 1.0)
    np.testing.assert_allclose(float(grad_norm), float(norm), rtol=1e-6)
    assert float(lr) == pytest.approx(float(schedule(step)), rel=1e-7)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
  assert not np.allclose(np.asarray(ours["eb"]["quantiles"]), np.asarray(params["eb"]["quantiles"]))


def test_aux_indices_point_at_the_quantiles_in_ravel_order():
  tree = _tree(np.random.default_rng(1))
  flat = np.asarray(jax.flatten_util.ravel_pytree(tree)[0])
  idx = optim.aux_indices(tree)
  np.testing.assert_array_equal(flat[idx], tree["eb"]["quantiles"].ravel())
  np.testing.assert_array_equal(np.asarray(optim.aux_vector(tree)), flat[idx])


@pytest.mark.parametrize("step,expected", [(0, 1.0), (99, 1.0), (100, 0.1), (150, 0.1),
                                           (200, 0.01), (10**6, 0.01)])
def test_learning_rate_is_the_multistep_schedule(step, expected):
  h = optim.hyper(_config(milestones=(200, 100), gamma=0.1))
  h["lr"] = np.float32(1.0)
  assert float(optim.learning_rate(h, jnp.int32(step))) == pytest.approx(expected, rel=1e-6)


def test_too_many_or_negative_milestones_are_config_errors():
  with pytest.raises(ConfigError, match="at most"):
    optim.hyper(_config(milestones=tuple(range(1, optim.MAX_MILESTONES + 2))))
  with pytest.raises(ConfigError, match="milestones"):
    optim.hyper(_config(milestones=(-1,)))
