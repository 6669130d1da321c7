"""FactorizedPrior (EntropyBottleneck): golden likelihoods, logits and aux loss; CDF invariants;
the aux loss moves the quantiles to the analytic tail points of a known density."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from icmh_jax.entropy.factorized import FactorizedPrior, tail_targets


def _close(a, ref, rtol=1e-5):
  """1e-5 relative, with an absolute floor of 1e-5 of the largest reference value."""
  np.testing.assert_allclose(np.asarray(a), ref, rtol=rtol, atol=rtol * np.abs(ref).max())


def test_parameter_names_and_shapes_are_compressai_entropy_bottleneck():
  params = FactorizedPrior(5).init(jax.random.PRNGKey(0), jnp.zeros((1, 2, 2, 5)))["params"]
  shapes = {k: v.shape for k, v in params.items()}
  f = (1, 3, 3, 3, 3, 1)
  expected = {f"matrices_{k}": (5, f[k + 1], f[k]) for k in range(5)}
  expected.update({f"biases_{k}": (5, f[k + 1], 1) for k in range(5)})
  expected.update({f"factors_{k}": (5, f[k + 1], 1) for k in range(4)})
  expected["quantiles"] = (5, 1, 3)
  assert shapes == expected
  # compressai init: constant matrices log(expm1(1 / 10**(1/5) / f_out)), zero factors,
  # quantiles (-10, 0, 10).
  np.testing.assert_allclose(params["matrices_1"], np.log(np.expm1(1 / 10 ** 0.2 / 3)), rtol=1e-6)
  np.testing.assert_array_equal(params["factors_2"], 0.0)
  np.testing.assert_array_equal(params["quantiles"][3, 0], [-10.0, 0.0, 10.0])


def test_eb_likelihood_and_logits_match_golden(tcm_golden, golden_eb_params):
  npz, _ = tcm_golden
  model = FactorizedPrior(192)
  variables = {"params": golden_eb_params}
  lik, lower, upper = model.apply(variables, jnp.asarray(npz["unit/eb_likelihood/inputs"]),
                                  method=model.likelihood)
  _close(lik, npz["unit/eb_likelihood/likelihood"])
  _close(lower, npz["unit/eb_likelihood/lower_logits"])
  _close(upper, npz["unit/eb_likelihood/upper_logits"])
  at_q = model.apply(variables, jnp.asarray(golden_eb_params["quantiles"]),
                     method=model.logits_cumulative)
  _close(at_q, npz["unit/eb_likelihood/logits_at_quantiles"])


def test_z_likelihoods_match_golden_forward_in_nhwc(tcm_golden, golden_eb_params):
  npz, _ = tcm_golden
  model = FactorizedPrior(192)
  z_hat = jnp.asarray(npz["fwd/z_hat"].transpose(0, 2, 3, 1))
  lik = model.apply({"params": golden_eb_params}, z_hat)
  _close(np.asarray(lik).transpose(0, 3, 1, 2), npz["fwd/z_likelihoods"])
  med = model.apply({"params": golden_eb_params}, method=model.medians)
  symbols = np.round(npz["fwd/z"] - np.asarray(med)[None, :, None, None]).astype(np.int32)
  np.testing.assert_array_equal(symbols, npz["cmp/z_symbols"])


def test_aux_loss_and_its_gradient_match_golden(tcm_golden, golden_eb_params):
  npz, meta = tcm_golden
  model = FactorizedPrior(192)

  def aux(params):
    return model.apply({"params": params}, method=model.aux_loss)

  params = jax.tree.map(jnp.asarray, golden_eb_params)
  value, grads = jax.value_and_grad(aux)(params)
  np.testing.assert_allclose(value, meta["train"]["aux_loss"], rtol=1e-4)
  np.testing.assert_allclose(grads["quantiles"], npz["train/aux_grad/entropy_bottleneck.quantiles"],
                             atol=1e-6)
  others = [float(jnp.abs(g).max()) for k, g in grads.items() if k != "quantiles"]
  assert max(others) == 0.0


def _random_prior(channels, seed):
  model = FactorizedPrior(channels, init_scale=1.0)
  params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, 1, 1, channels)))["params"]
  keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(params))
  params = {k: p + 0.5 * jax.random.normal(kk, p.shape) if k != "quantiles" else p
            for (k, p), kk in zip(sorted(params.items()), keys)}
  return model, params


def test_cdf_is_monotone_and_bin_likelihoods_sum_to_one():
  model, params = _random_prior(6, 3)
  grid = jnp.broadcast_to(jnp.linspace(-60.0, 60.0, 4001), (6, 1, 4001))
  logits = np.asarray(model.apply({"params": params}, grid, method=model.logits_cumulative))
  assert np.all(np.diff(logits, axis=-1) > 0)
  assert np.all(logits[:, 0, 0] < -20) and np.all(logits[:, 0, -1] > 20)  # grid covers the mass
  v = jnp.broadcast_to(jnp.arange(-60.0, 61.0), (6, 1, 121))
  lik, _, _ = model.apply({"params": params}, v, method=model.likelihood)
  np.testing.assert_allclose(np.asarray(lik, np.float64).sum(-1), 1.0, atol=1e-6)


def test_aux_loss_moves_quantiles_to_analytic_tails_of_logistic_density():
  # With zero factors every layer is affine, so f(v) = a·v + b per channel: a logistic density
  # whose quantile for target t is (t − b) / a, computed here in float64 from the weights.
  channels = 4
  model = FactorizedPrior(channels, init_scale=1.0)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 1, 1, channels)))["params"]
  rng = np.random.default_rng(7)
  params = {k: np.zeros_like(p) if k.startswith("factors") else
            np.asarray(p) + rng.normal(0, 0.3, p.shape).astype(np.float32)
            for k, p in params.items()}
  params["quantiles"] = np.broadcast_to(np.float32([-5.0, 5.0, 10.0]), (channels, 1, 3))
  a, b = np.ones((channels, 1, 1)), np.zeros((channels, 1, 1))
  for k in range(5):
    w = np.log1p(np.exp(params[f"matrices_{k}"].astype(np.float64)))
    a, b = w @ a, w @ b + params[f"biases_{k}"]
  expected = (tail_targets(1e-9)[None, :] - b[:, 0]) / a[:, 0]
  assert np.all(np.abs(expected - np.asarray(params["quantiles"])[:, 0]) > 1.0)

  opt = optax.adam(0.1)
  q = jnp.asarray(params["quantiles"])
  state = opt.init(q)

  @jax.jit
  def step(q, state):
    g = jax.grad(lambda q: model.apply({"params": {**params, "quantiles": q}},
                                       method=model.aux_loss))(q)
    updates, state = opt.update(g, state)
    return optax.apply_updates(q, updates), state

  for _ in range(400):
    q, state = step(q, state)
  np.testing.assert_allclose(np.asarray(q)[:, 0], expected, atol=0.1)


def test_wrong_channel_count_is_rejected():
  model = FactorizedPrior(4)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 1, 1, 4)))
  with pytest.raises(ValueError, match="4 channels, input has 3"):
    model.apply(params, jnp.zeros((1, 2, 2, 3)))
