"""`--torch-reference DIR`: loading a LIC_TCM checkout, timing it, and the errors without torch.

The timing tests use a fake checkout (a tiny `models/tcm.py` in tmp_path) so they need torch but
not compressai; they are skipped where torch is absent (CI). The error tests need no torch.
"""

import builtins
import sys
import textwrap

import numpy as np
import pytest

from icmh_jax.benchmarks import torch_reference
from icmh_jax.cli import main
from icmh_jax.errors import ConfigError, IcmhError

# A stand-in for LIC_TCM's models/tcm.py: records what the benchmark hands it.
FAKE_TCM = '''
import torch

CALLS = {"update": [], "compress": [], "decompress": [], "forward": 0, "threads": []}


class TCM(torch.nn.Module):
  def __init__(self, N=128, M=320, num_slices=5, **kwargs):
    super().__init__()
    CALLS["init"] = dict(N=N, M=M, num_slices=num_slices)
    self.g = torch.nn.Conv2d(3, 3, 1)
    self.entropy_bottleneck = torch.nn.Module()
    self.entropy_bottleneck.quantiles = torch.nn.Parameter(torch.zeros(4))
    self.ready = False
    CALLS["net"], CALLS["w0"] = self, self.g.weight.detach().clone()

  def update(self, scale_table=None, force=False):
    CALLS["update"].append(force)
    self.ready = True

  def compress(self, x):
    if not self.ready:
      raise RuntimeError("compress before update")
    CALLS["compress"].append(x.clone())
    CALLS["threads"].append(torch.get_num_threads())
    h, w = x.shape[2:]
    return {"strings": [[b"y" * (h // 16)], [b"z" * (w // 64)]], "shape": (h // 64, w // 64)}

  def decompress(self, strings, shape):
    CALLS["decompress"].append((strings, shape))
    return {"x_hat": torch.zeros(1, 3, 64 * shape[0], 64 * shape[1])}

  def forward(self, x):
    CALLS["forward"] += 1
    x_hat = self.g(x)
    return {"x_hat": x_hat, "likelihoods": {"y": torch.sigmoid(x_hat)}}

  def aux_loss(self):
    return (self.entropy_bottleneck.quantiles - 1).pow(2).sum()
'''


@pytest.fixture(autouse=True)
def _restore_import_state(monkeypatch):
  """load_reference puts DIR on sys.path and imports `models`: undo both after each test."""
  monkeypatch.setattr(sys, "path", list(sys.path))
  yield
  for name in [n for n in sys.modules if n == "models" or n.startswith("models.")]:
    del sys.modules[name]


def _fake_checkout(root, body=FAKE_TCM):
  (root / "models").mkdir(parents=True)
  (root / "models" / "__init__.py").write_text("")
  (root / "models" / "tcm.py").write_text(textwrap.dedent(body))
  return root


def test_codec_timing_codes_the_padded_image_after_update(tmp_path):
  torch = pytest.importorskip("torch")
  root = _fake_checkout(tmp_path / "lic_tcm")
  image = np.random.default_rng(1).random((200, 300, 3), dtype=np.float32)
  threads_before = torch.get_num_threads()
  out = torch_reference.time_codec(root, 64, 320, 200, 300, repeats=2, threads=1, image=image,
                                   num_slices=5)
  calls = sys.modules["models.tcm"].CALLS
  assert calls["init"] == dict(N=64, M=320, num_slices=5)
  assert calls["update"] == [True]
  assert len(calls["compress"]) == 3 and len(calls["decompress"]) == 3  # first call + 2 timed
  assert calls["threads"] == [1, 1, 1] and torch.get_num_threads() == threads_before
  # 200x300 -> 256x384, zero padding centred: rows 28 + 28, columns 42 + 42.
  x = calls["compress"][-1].numpy()
  assert x.shape == (1, 3, 256, 384)
  np.testing.assert_array_equal(x[0, :, 28:228, 42:342], image.transpose(2, 0, 1))
  assert np.count_nonzero(x) == np.count_nonzero(image)
  assert out["bytes"] == 256 // 16 + 384 // 64 and out["threads"] == 1
  assert out["encode_s"] >= 0 and out["decode_s"] >= 0


def test_train_step_timing_steps_both_optimisers_once_per_call(tmp_path):
  torch = pytest.importorskip("torch")
  root = _fake_checkout(tmp_path / "lic_tcm")
  out = torch_reference.time_train_step(root, 64, batch=2, crop=256, repeats=2, threads=1)
  calls = sys.modules["models.tcm"].CALLS
  assert calls["forward"] == 3  # warm-up + 2 timed
  assert len(out["runs_s"]) == 2 and out["step_s"] == float(np.median(out["runs_s"]))
  assert out["images_per_s"] == pytest.approx(2 / out["step_s"])
  # Adam moves each weight by about lr per step: 3 main steps at 1e-4, 3 aux steps at 1e-3
  # (the aux gradient 2 (q - 1) keeps its sign, so the quantiles move by 3e-3 towards 1).
  moved = (calls["net"].g.weight.detach() - calls["w0"]).abs()
  assert 0 < float(moved.max()) <= 3e-4 * 1.01
  quantiles = calls["net"].entropy_bottleneck.quantiles.detach().numpy()
  np.testing.assert_allclose(quantiles, 3e-3, rtol=1e-3)
  del torch


def test_train_curves_record_each_batch_fed_with_its_loss_terms(tmp_path):
  pytest.importorskip("torch")
  from icmh_jax.benchmarks import harness
  root = _fake_checkout(tmp_path / "lic_tcm")
  rng = np.random.default_rng(3)
  batches = [rng.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8) for _ in range(3)]
  out = torch_reference.train_curves(root, 64, 320, 5, batches, lam=0.01, clip_norm=1.0, lr=1e-4,
                                     aux_lr=1e-3, threads=1)
  assert sys.modules["models.tcm"].CALLS["forward"] == 3
  assert out["digests"] == [harness.digest(b) for b in batches]
  assert all(len(out[k]) == 3 for k in ("loss", "bpp", "mse", "step_s"))
  expected = np.add(out["bpp"], 0.01 * 255 ** 2 * np.array(out["mse"]))
  np.testing.assert_allclose(out["loss"], expected, rtol=1e-5)
  assert out["loss"][0] != out["loss"][1]  # other pixels, updated weights
  with pytest.raises(ConfigError, match="crop 128"):
    torch_reference.train_curves(root, 64, 320, 5, [batches[0][:, :128, :128]], lam=0.01,
                                 clip_norm=1.0, lr=1e-4, aux_lr=1e-3, threads=1)


def test_rd_loss_is_bits_per_pixel_plus_weighted_mse():
  torch = pytest.importorskip("torch")
  x = torch.zeros(2, 3, 4, 8)
  x_hat = torch.full_like(x, 0.1)
  likelihoods = {"y": torch.full((2, 5, 1, 2), 0.5), "z": torch.full((2, 3, 1, 1), 0.25)}
  loss, bpp, mse = torch_reference._rd_loss({"x_hat": x_hat, "likelihoods": likelihoods}, x,
                                            lam=0.01)
  bits = 2 * 5 * 2 * 1 + 2 * 3 * 2  # -log2(0.5) per y element, -log2(0.25) per z element
  assert float(bpp) == pytest.approx(bits / (2 * 4 * 8), rel=1e-5)
  assert float(mse) == pytest.approx(0.01, rel=1e-5)
  assert float(loss) == pytest.approx(bits / (2 * 4 * 8) + 0.01 * 255 ** 2 * 0.01, rel=1e-5)


def test_reference_sizes_the_reference_cannot_code_are_refused(tmp_path):
  pytest.importorskip("torch")
  root = _fake_checkout(tmp_path / "lic_tcm")
  with pytest.raises(ConfigError, match="at least 256x256"):
    torch_reference.time_codec(root, 64, 320, 128, 640, repeats=1, threads=1)
  with pytest.raises(ConfigError, match="crop 192"):
    torch_reference.time_train_step(root, 64, batch=1, crop=192, repeats=1, threads=1)
  with pytest.raises(ConfigError, match="--torch-threads must be >= 1, got 0"):
    torch_reference.time_codec(root, 64, 320, 256, 256, repeats=1, threads=0)


def test_missing_library_of_the_reference_is_named(tmp_path):
  pytest.importorskip("torch")
  root = _fake_checkout(tmp_path / "lic_tcm", "import compressai_absent_xyz\n")
  with pytest.raises(IcmhError, match="compressai_absent_xyz"):
    torch_reference.load_reference(root)


def test_directory_without_models_tcm_is_not_a_checkout(tmp_path):
  with pytest.raises(IcmhError, match="not a LIC_TCM checkout"):
    torch_reference.load_reference(tmp_path)


@pytest.mark.parametrize("target", ["codec", "train"])
def test_torch_reference_without_torch_exits_1_naming_torch(tmp_path, monkeypatch, capsys,
                                                             target):
  root = _fake_checkout(tmp_path / "lic_tcm")
  real_import = builtins.__import__

  def no_torch(name, *args, **kwargs):
    if name == "torch" or name.startswith("torch."):
      raise ModuleNotFoundError("No module named 'torch'", name="torch")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_torch)
  extra = ["--model", "tcm", "--N", "64"] if target == "train" else ["--N", "64"]
  assert main(["bench", target, *extra, "--torch-reference", str(root)]) == 1
  err = capsys.readouterr().err
  assert err.startswith(f"icmh bench: error: --torch-reference needs torch")
  assert "pip install torch==2.13.0" in err


def test_train_torch_reference_refuses_systems_other_than_tcm(tmp_path, capsys):
  root = _fake_checkout(tmp_path / "lic_tcm")
  assert main(["bench", "train", "--model", "sa_icm", "--torch-reference", str(root)]) == 1
  assert "--torch-reference times LIC-TCM only (system tcm), got 'sa_icm'" in capsys.readouterr().err


def test_speedup_is_torch_seconds_over_jax_seconds():
  assert torch_reference.speedup(3.0, 2.0) == 1.5
  assert torch_reference.speedup(1.0, 4.0) == 0.25
