"""Ch-ARM invariants: slice k sees only earlier slices (the first max_support_slices of them)
and, when configured, the extra context."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icmh_jax.models.channel_arm import ChannelARM

W = 8  # slice width


def _arm(**kw):
  return ChannelARM(num_slices=3, slice_width=W, inter_dim=16, head_dim=8, window_size=4,
                    hidden=(16, 16), **kw)


def _round_action(k, y_k, mu, scale):
  return jnp.round(y_k - mu) + mu


def _run(arm, params, y, latent, context=None):
  record = []
  y_hat = arm.apply(params, latent, latent, _round_action, y=y, context=context, record=record)
  return y_hat, [r["mu"] for r in record]


@pytest.fixture(scope="module")
def inputs():
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
  y = 4 * jax.random.normal(k1, (1, 8, 8, 3 * W))
  latent = jax.random.normal(k2, (1, 8, 8, 3 * W))
  return y, latent, k3


def _changed(a, b):
  return float(jnp.max(jnp.abs(a - b))) > 1e-3


@pytest.mark.slow  # moved out of the default suite (its 5-minute budget)
def test_slice_parameters_depend_only_on_supported_earlier_slices(inputs):
  """max_support_slices=1: slice 2 sees y_hat_0 but not y_hat_1 (reference:
  y_hat_slices[:max_support_slices], the first slices); no slice sees its own or later ones."""
  y, latent, key = inputs
  arm = _arm(max_support_slices=1)
  params = arm.init(key, latent, latent, _round_action, y=y)
  _, mu = _run(arm, params, y, latent)
  _, mu_b1 = _run(arm, params, y.at[..., W:2 * W].add(7.0), latent)  # change slice 1 only
  for k in range(3):
    np.testing.assert_array_equal(mu_b1[k], mu[k])
  _, mu_b0 = _run(arm, params, y.at[..., :W].add(7.0), latent)  # change slice 0 only
  np.testing.assert_array_equal(mu_b0[0], mu[0])
  assert _changed(mu_b0[1], mu[1]) and _changed(mu_b0[2], mu[2])


def test_context_enters_every_slice_and_is_required_when_configured(inputs):
  y, latent, key = inputs
  arm = _arm(extra_support_channels=5)
  ctx = jax.random.normal(jax.random.PRNGKey(7), (1, 8, 8, 5))
  params = arm.init(key, latent, latent, _round_action, y=y, context=ctx)
  _, mu = _run(arm, params, y, latent, ctx)
  _, mu2 = _run(arm, params, y, latent, ctx + 1.0)
  assert all(_changed(a, b) for a, b in zip(mu, mu2))
  with pytest.raises(ValueError, match="extra_support_channels=5"):
    _run(arm, params, y, latent, None)
