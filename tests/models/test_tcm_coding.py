"""TCM compress -> decompress on a real photo, with the golden set's (reference-rule) weights,
through the one public path: the registry's `tcm` system and its `.icmh` file."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from skimage import data

from icmh_jax.entropy import container
from icmh_jax.golden import tcm as golden_tcm
from icmh_jax.models import coding


@pytest.fixture(scope="module")
def golden_model(reference_dir):
  d = reference_dir / "tcm"
  model, params, _, _ = golden_tcm.golden_params(d / "tcm_golden.npz", d / "tcm_golden.json")
  return model, params


def _layer0_streams(data):
  """The z and y streams of a file's machine layer."""
  _, layers = container.read_container(data)
  return container.unpack_streams(layers[0], 2)


_FORWARD = {}


def _astronaut(h, w):
  u8 = np.asarray(Image.fromarray(data.astronaut()).resize((w, h), Image.BICUBIC))
  return u8.astype(np.float32) / np.float32(255)


def _forward(model, params, x):
  """The eval forward, jitted once per model (both tests share the 256x384 compile)."""
  if model not in _FORWARD:
    _FORWARD[model] = jax.jit(lambda p, v: model.apply({"params": p}, v))
  return _FORWARD[model](params, jnp.asarray(x)[None])


@pytest.mark.slow  # 30 s; the golden check covers decode == forward
def test_decompress_equals_clamped_forward_and_bytes_match_the_estimate(golden_model):
  model, params = golden_model
  system = golden_tcm.tcm_system(model)
  x = _astronaut(256, 384)
  data = system.compress({"base": params}, x)
  x_dec = system.decompress({"base": params}, data)
  streams = _layer0_streams(data)
  out = _forward(model, params, x)
  np.testing.assert_allclose(x_dec, np.clip(np.asarray(out.x_hat[0]), 0, 1), rtol=0, atol=1e-5)
  est_bytes = -sum(float(jnp.sum(jnp.log2(v))) for v in out.likelihoods.values()) / 8
  real_bytes = sum(len(s) for s in streams)
  assert real_bytes <= est_bytes * 1.005 + 64, (real_bytes, est_bytes)
  assert real_bytes >= 0.5 * est_bytes  # the estimate is a real rate, not a loose bound


@pytest.mark.slow  # moved out of the default suite (its 5-minute budget)
def test_image_of_any_size_is_padded_to_128_and_cropped_back(golden_model):
  model, params = golden_model
  system = golden_tcm.tcm_system(model)
  x = _astronaut(200, 300)
  data = system.compress({"base": params}, x)
  header, _ = container.read_container(data)
  assert header.pad == (28, 28, 42, 42)  # floor(pad/2) top/left, the rest bottom/right
  x_dec = system.decompress({"base": params}, data)
  padded = np.pad(x, ((28, 28), (42, 42), (0, 0)))
  out = _forward(model, params, padded)
  expected = np.clip(np.asarray(out.x_hat[0]), 0, 1)[28:228, 42:342]
  assert x_dec.shape == (200, 300, 3)
  np.testing.assert_allclose(x_dec, expected, rtol=0, atol=1e-5)


def test_decoder_rejects_a_truncated_y_stream(golden_model):
  from icmh_jax.errors import BitstreamError
  model, params = golden_model
  system = golden_tcm.tcm_system(model)
  x = _astronaut(256, 384)
  data = system.compress({"base": params}, x)
  header, _ = container.read_container(data)
  z, y = _layer0_streams(data)
  cut = container.write_container(header, {0: container.pack_streams([z, y[:len(y) // 2]])})
  with pytest.raises(BitstreamError):
    system.decompress({"base": params}, cut)


_DECODE_SCRIPT = """
import sys
import numpy as np
from icmh_jax.golden import tcm as golden_tcm
d, src, dst = sys.argv[1:4]
model, params, _, _ = golden_tcm.golden_params(d + "/tcm_golden.npz", d + "/tcm_golden.json")
data = open(src, "rb").read()
np.save(dst, golden_tcm.tcm_system(model).decompress({"base": params}, data))
"""


@pytest.mark.slow
def test_single_threaded_process_decodes_the_same_image_bit_for_bit(golden_model, tmp_path,
                                                                    reference_dir):
  """CompressAI users report cross-device decode corruption: decode elsewhere, compare bits."""
  import os
  import subprocess
  import sys
  model, params = golden_model
  system = golden_tcm.tcm_system(model)
  x = _astronaut(256, 384)
  data = system.compress({"base": params}, x)
  here = system.decompress({"base": params}, data)
  src, dst = tmp_path / "x.icmh", tmp_path / "x_hat.npy"
  src.write_bytes(data)
  env = dict(os.environ, XLA_FLAGS="--xla_cpu_multi_thread_eigen=false "
             "intra_op_parallelism_threads=1", OMP_NUM_THREADS="1")
  subprocess.run([sys.executable, "-c", _DECODE_SCRIPT, str(reference_dir / "tcm"), str(src),
                  str(dst)], check=True, env=env, timeout=1200)
  np.testing.assert_array_equal(np.load(dst), here)


def test_symbol_past_the_codable_range_is_a_reported_error_not_a_traceback():
  from icmh_jax.entropy import gaussian
  from icmh_jax.entropy.coder import SymbolEncoder
  from icmh_jax.entropy.tables import gaussian_tables
  from icmh_jax.errors import IcmhError
  enc = SymbolEncoder(gaussian_tables(gaussian.scale_table()))
  with pytest.raises(IcmhError, match="symbol -34885 is outside the codable range"):
    coding._encode(enc, np.array([3, -34885], np.int32), np.array([5, 5]))
