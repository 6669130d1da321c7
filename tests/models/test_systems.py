"""The four systems end to end on a real photo: tiny configs, random (Flax-init) weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data

from icmh_jax.entropy import container
from icmh_jax.errors import BitstreamError
from icmh_jax.models import registry
from tiny_model import TINY

HUMAN = ("icmh_ff", "fr_icmh", "pr_icmh")
H, W, TOP, LEFT = 100, 120, 14, 4  # padded to 128 x 128: floor(pad / 2) top / left


@pytest.fixture(scope="module")
def photo():
  return skimage.data.astronaut()[::2, ::2][20:20 + H, 80:80 + W].astype(np.float32) / 255


@pytest.fixture(scope="module")
def base_params():
  return registry.get_system("sa_icm", TINY).init(jax.random.key(0), (1, 64, 64, 3))["base"]


_CACHE = {}


def system_and_params(name, base_params):
  """One system per name, its base = the shared SA-ICM params (the frozen machine codec)."""
  if name not in _CACHE:
    system = registry.get_system(name, TINY)
    params = {"base": base_params}
    if system.has_additional:
      params["additional"] = system.init(jax.random.key(1), (1, 64, 64, 3))["additional"]
    _CACHE[name] = system, params
  return _CACHE[name]


def _bytes_estimate(likelihoods) -> float:
  return -sum(float(jnp.sum(jnp.log2(v))) for v in likelihoods.values()) / 8


@pytest.mark.parametrize("name", ("sa_icm", "pr_icmh") + tuple(  # the rest: 12 s each
    pytest.param(n, marks=pytest.mark.slow) for n in HUMAN if n != "pr_icmh"))
def test_decode_equals_eval_forward_and_bytes_match_estimate(name, photo, base_params):
  system, params = system_and_params(name, base_params)
  data = system.compress(params, photo)
  x = np.pad(photo, ((TOP, 128 - H - TOP), (LEFT, 128 - W - LEFT), (0, 0)))[None]
  out = jax.jit(lambda p, v: system.apply(p, v, train=False))(params, x)
  crop = lambda a: np.clip(np.asarray(a)[0, TOP:TOP + H, LEFT:LEFT + W], 0, 1)
  x_human = system.decompress(params, data, layer="human")
  x_machine = system.decompress(params, data, layer="machine")
  assert x_human.shape == x_machine.shape == (H, W, 3)
  np.testing.assert_allclose(x_human, crop(out.x_hat), rtol=0, atol=1e-5)
  np.testing.assert_allclose(x_machine, crop(out.x_hat_m), rtol=0, atol=1e-5)
  _, layers = container.read_container(data, need_layers=())
  for i, layer in ((0, "machine"), (1, "human")):
    if not out.likelihoods[layer]:
      assert i not in layers
      continue
    est = _bytes_estimate(out.likelihoods[layer])
    assert 0.5 * est <= len(layers[i]) <= est * 1.005 + 64, (layer, len(layers[i]), est)


@pytest.mark.parametrize("name", HUMAN)
def test_machine_layer_decodes_from_file_cut_after_layer_0(name, photo, base_params):
  system, params = system_and_params(name, base_params)
  machine_only, _ = system_and_params("sa_icm", base_params)
  data = system.compress(params, photo)
  header, layers = container.read_container(data, need_layers=(0, 1))
  cut = data[:len(data) - len(layers[1]) - container.LAYER_HEADER_BYTES]  # drop layer 1
  x_cut = system.decompress(params, cut, layer="machine")
  np.testing.assert_array_equal(x_cut, system.decompress(params, data, layer="machine"))
  # Layer 0 is SA-ICM's own stream: bit-identical to the machine-only system's file.
  sa_data = machine_only.compress(params, photo)
  _, sa_layers = container.read_container(sa_data)
  assert sa_layers[0] == layers[0]
  np.testing.assert_array_equal(x_cut, machine_only.decompress({"base": base_params}, sa_data))
  with pytest.raises(BitstreamError, match="human layer missing"):
    system.decompress(params, cut, layer="human")


@pytest.mark.parametrize("name", HUMAN)
def test_base_params_get_no_gradient(name, base_params):
  system, params = system_and_params(name, base_params)
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(1, 64, 64, 3)), jnp.float32)

  def loss(p_base):
    out = system.apply({**params, "base": p_base}, x, train=True, rng=jax.random.key(2))
    bpp = sum(jnp.sum(jnp.log(l)) for l in out.likelihoods[system.trained_layer].values())
    return -bpp / (np.log(2) * 64 * 64) + 0.01 * 255 ** 2 * jnp.mean((x - out.x_hat) ** 2)

  # Without the stop_gradient the loss depends on the base through y_hat_m / x_hat_m.
  grads = jax.tree_util.tree_leaves(jax.jit(jax.grad(loss))(base_params))
  assert len(grads) == len(jax.tree_util.tree_leaves(base_params))
  assert all(np.all(np.asarray(g) == 0) for g in grads)
  assert system.trainable_key() == "additional"


def test_decoder_with_another_config_is_refused(photo, base_params):
  system, params = system_and_params("fr_icmh", base_params)
  data = system.compress(params, photo)
  other = registry.get_system("fr_icmh", {**TINY, "residual_context": "machine"})
  with pytest.raises(BitstreamError, match="another 'fr_icmh' config"):
    other.decompress(params, data)
  with pytest.raises(BitstreamError, match="written by system 'fr_icmh', not 'icmh_ff'"):
    registry.get_system("icmh_ff", TINY).decompress(params, data)


@pytest.mark.slow
@pytest.mark.parametrize("name, variant", (("icmh_ff", {"residual_context": "machine"}),
                                           ("fr_icmh", {"residual_context": "machine"}),
                                           ("fr_icmh", {"fr_hyper_input": "y"})))
def test_open_design_variants_round_trip(name, variant, photo, base_params):
  """residual_context="machine" (the additional Ch-ARM sees y_hat_m) and fr_hyper_input="y" (FR's
  h_a sees y, not y_a): the decoder must reproduce the eval forward."""
  system = registry.get_system(name, {**TINY, **variant})
  params = {"base": base_params,
            "additional": system.init(jax.random.key(1), (1, 64, 64, 3))["additional"]}
  data = system.compress(params, photo)
  x = np.pad(photo, ((TOP, 128 - H - TOP), (LEFT, 128 - W - LEFT), (0, 0)))[None]
  out = jax.jit(lambda p, v: system.apply(p, v, train=False))(params, x)
  expected = np.clip(np.asarray(out.x_hat)[0, TOP:TOP + H, LEFT:LEFT + W], 0, 1)
  np.testing.assert_allclose(system.decompress(params, data), expected, rtol=0, atol=1e-5)
  _, layers = container.read_container(data, need_layers=(0, 1))
  est = _bytes_estimate(out.likelihoods["human"])
  assert 0.5 * est <= len(layers[1]) <= est * 1.005 + 64


@pytest.mark.parametrize("name", ("sa_icm", "fr_icmh"))
def test_aux_loss_of_the_trained_codec_moves_only_its_quantiles(name, base_params):
  system, params = system_and_params(name, base_params)
  key = system.trainable_key()
  aux = lambda p: system.aux_loss({**params, key: p})
  assert np.isfinite(float(aux(params[key]))) and float(aux(params[key])) > 0
  grads = jax.tree_util.tree_flatten_with_path(jax.jit(jax.grad(aux))(params[key]))[0]
  moved = {"/".join(p.key for p in path) for path, g in grads if np.any(np.asarray(g) != 0)}
  assert moved == {"entropy_bottleneck/quantiles"}
