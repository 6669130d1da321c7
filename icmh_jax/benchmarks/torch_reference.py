"""Side-by-side timings and training curves of the PyTorch LIC-TCM reference, for `icmh bench
codec|train --torch-reference DIR` and `python -m icmh_jax.benchmarks.train_compare`.

DIR is a local checkout of github:jmliu206/LIC_TCM (its `models/tcm.py` defines `TCM`); it needs
torch (our optional `.[torch]` extra), compressai, timm and einops. Nothing of the reference is
copied here: we import it from DIR and time it on the shapes our benchmarks use, through the same
harness (`harness.measure`: first call apart, median of `repeats`). torch runs on `threads` CPU
threads, by default every core this process may use (`os.sched_getaffinity`), as XLA does.
Both sides run the same weights: the benchmarks pass our params converted to the reference's
state_dict (`convert.tcm.to_reference`), so the two code the same symbols. Each reference timing
runs in a child process of its own (`isolated`), so that its peak RSS is its own.
"""

import contextlib
import importlib
import os
import pathlib
import sys
import time

import numpy as np

from icmh_jax.benchmarks import harness
from icmh_jax.errors import ConfigError, IcmhError

# The reference's hyper-analysis runs 4x4 windows at 1/32 scale, so sides must be multiples of 128,
# and its Ch-ARM's 8x8 windows break when a side of y (1/16 scale) is <= 8, so sides must be >= 256.
_MULTIPLE, _MIN_SIDE = 128, 256
LAM = 0.013  # LIC-TCM's middle rate; the value does not change the step time
_INSTALL = {"torch": "pip install torch==2.13.0 (the project's .[torch] extra)",
            "compressai": "pip install compressai==1.2.8", "timm": "pip install timm",
            "einops": "pip install einops"}


def default_threads() -> int:
  """CPU cores this process may run on (what torch gets unless told otherwise)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def load_reference(directory):
  """Imports `models.tcm.TCM` from a LIC_TCM checkout at `directory` (added to sys.path).

  Returns:
    The reference's `TCM` class (a torch module with forward / compress / decompress / update).
  Raises:
    IcmhError: torch or a library the reference imports is missing, or `directory` is not a
      checkout (no models/tcm.py).
  """
  root = pathlib.Path(directory).expanduser().resolve()
  if not (root / "models" / "tcm.py").is_file():
    raise IcmhError(f"--torch-reference {directory!r} is not a LIC_TCM checkout: "
                    f"{root / 'models' / 'tcm.py'} does not exist")
  try:
    import torch  # noqa: F401  (lazy: torch is an optional extra)
  except ImportError as e:
    raise IcmhError(f"--torch-reference needs torch, which cannot be imported ({e}); "
                    f"{_INSTALL['torch']}") from e
  # A `models` package imported earlier from elsewhere (another checkout) would shadow this one.
  for name in [n for n in sys.modules if n == "models" or n.startswith("models.")]:
    origin = getattr(sys.modules[name], "__file__", None) or ""
    if not origin.startswith(str(root) + os.sep):
      del sys.modules[name]
  if str(root) not in sys.path:
    sys.path.insert(0, str(root))
  importlib.invalidate_caches()
  try:
    module = importlib.import_module("models.tcm")
  except ImportError as e:
    missing = (getattr(e, "name", None) or "").split(".")[0]
    hint = _INSTALL.get(missing, "install the reference's requirements")
    raise IcmhError(f"the LIC_TCM reference at {root} cannot be imported ({e}); {hint}") from e
  if not hasattr(module, "TCM"):
    raise IcmhError(f"{root / 'models' / 'tcm.py'} defines no TCM class")
  return module.TCM


def astronaut(height: int, width: int) -> np.ndarray:
  """The benchmark photo: skimage's astronaut resized (bicubic) to [height, width, 3] in [0, 1]."""
  from PIL import Image
  from skimage import data
  u8 = np.asarray(Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC))
  return u8.astype(np.float32) / np.float32(255)


@contextlib.contextmanager
def _torch_threads(threads):
  import torch
  threads = default_threads() if threads is None else int(threads)
  if threads < 1:
    raise ConfigError(f"--torch-threads must be >= 1, got {threads}")
  before = torch.get_num_threads()
  torch.set_num_threads(threads)
  try:
    yield threads
  finally:
    torch.set_num_threads(before)


def _build(TCM, N, M, num_slices, state_dict, seed):
  """The reference TCM with our weights (`state_dict` from `convert.tcm.to_reference`), or its own
  seeded init when `state_dict` is None."""
  import torch
  from icmh_jax.convert.tcm import is_buffer
  torch.manual_seed(seed)
  net = TCM(N=N, M=M, num_slices=num_slices)
  if state_dict is None:
    return net, f"random init (torch.manual_seed({seed}))"
  own = net.state_dict()
  missing = sorted(k for k in own if k not in state_dict and not is_buffer(k))
  if missing:
    raise IcmhError(f"our params miss {len(missing)} reference tensors, e.g. {missing[:3]}")
  # The reference's load_state_dict (compressai) takes the full dict: its buffers (CDF tables,
  # rebuilt by `update`) keep the values they have.
  own.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict.items()})
  net.load_state_dict(own)
  return net, "ours (converted to the reference's state_dict)"


def _child(name, kwargs):
  result = globals()[name](**kwargs)
  result["peak_rss_bytes"] = harness.peak_rss_bytes()
  return result


def isolated(name: str, **kwargs) -> dict:
  """Runs `time_codec`, `time_train_step` or `train_curves` in a fresh child process (spawned:
  no JAX state, its own allocator and threads, the user's malloc settings, not ours) and returns
  its result plus the child's peak RSS. A child that dies (e.g. killed for memory) raises."""
  import concurrent.futures
  import multiprocessing
  from icmh_jax import malloc_options
  malloc_options.release()  # our kept heap and the child must fit side by side
  with malloc_options.users_environment(), concurrent.futures.ProcessPoolExecutor(
      1, mp_context=multiprocessing.get_context("spawn")) as pool:
    future = pool.submit(_child, name, kwargs)
  try:
    return future.result()
  except concurrent.futures.process.BrokenProcessPool:
    raise IcmhError(f"the PyTorch reference's process died during {name} (killed by the "
                    "system? out of memory shows in `dmesg`)") from None


def _to_nchw(image: np.ndarray):
  """[H, W, 3] in [0, 1] -> [1, 3, H', W'] zero-padded (centred, as LIC_TCM eval.py) to x128."""
  import torch
  import torch.nn.functional as F
  h, w, _ = image.shape
  x = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
  ph, pw = -h % _MULTIPLE, -w % _MULTIPLE
  return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


def time_codec(directory, N: int, M: int, height: int, width: int, repeats: int,
               threads: int | None = None, *, image: np.ndarray | None = None,
               num_slices: int = 5, seed: int = 0, state_dict: dict | None = None) -> dict:
  """Times the reference's `compress` and `decompress` on one image (random init, seed `seed`).

  Args:
    directory: LIC_TCM checkout.
    N, M, num_slices: the reference TCM's widths.
    height, width: image size; `image` ([height, width, 3] float in [0, 1]) defaults to the
      astronaut photo `icmh bench codec` codes.
    repeats: timed runs per direction (median reported; the first call is timed apart).
    threads: torch CPU threads (default: every usable core).
  Returns:
    dict(encode_s, decode_s, encode_first_s, decode_first_s, bytes, threads, weights).
  """
  import torch
  TCM = load_reference(directory)
  if min(-(-height // _MULTIPLE), -(-width // _MULTIPLE)) < _MIN_SIDE // _MULTIPLE:
    raise ConfigError(f"the reference codes images of at least {_MIN_SIDE}x{_MIN_SIDE} (after "
                      f"padding to multiples of {_MULTIPLE}), got {height}x{width}")
  if image is None:
    image = astronaut(height, width)
  if image.shape != (height, width, 3):
    raise ConfigError(f"image must be [{height}, {width}, 3], got {list(image.shape)}")
  with _torch_threads(threads) as n_threads, torch.no_grad():
    net, weights = _build(TCM, N, M, num_slices, state_dict, seed)
    net = net.eval()
    net.update(force=True)  # CDF tables for the range coder
    x = _to_nchw(image)
    state = {}

    def encode():
      state["out"] = net.compress(x)

    def decode():
      state["x_hat"] = net.decompress(state["out"]["strings"], state["out"]["shape"])

    enc = harness.measure("torch_encode", encode, repeats=repeats)
    dec = harness.measure("torch_decode", decode, repeats=repeats)
  n_bytes = sum(len(s) for group in state["out"]["strings"] for s in group)
  return dict(encode_s=round(enc.median_s, 3), decode_s=round(dec.median_s, 3),
              encode_first_s=round(enc.first_call_s or 0.0, 2),
              decode_first_s=round(dec.first_call_s or 0.0, 2), bytes=n_bytes, threads=n_threads,
              weights=weights)


def _rd_loss(out, x, lam: float):
  """LIC_TCM train.py's MSE rate-distortion loss: bits per pixel + lam * 255² * mse.

  Returns:
    (loss, bpp, mse) scalar tensors (loss carries the graph).
  """
  import torch
  b, _, h, w = x.shape
  bpp = sum(torch.log(l).sum() for l in out["likelihoods"].values()) / (-np.log(2) * b * h * w)
  mse = torch.mean((out["x_hat"] - x) ** 2)
  return bpp + lam * 255 ** 2 * mse, bpp, mse


def check_train_shape(batch: int, crop: int) -> None:
  """Raises ConfigError unless the reference can train on batch x crop² crops."""
  if batch < 1 or crop < _MIN_SIDE or crop % _MULTIPLE:
    raise ConfigError(f"the reference needs batch >= 1 and crop a positive multiple of "
                      f"{_MULTIPLE} >= {_MIN_SIDE}, got batch {batch}, crop {crop}")


def _to_batch(u8: np.ndarray):
  """uint8 [B, H, W, 3] -> float32 [B, 3, H, W] in [0, 1] (x / 255, as our train step)."""
  import torch
  x = torch.from_numpy(np.ascontiguousarray(u8)).permute(0, 3, 1, 2)
  return x.float().div(255).contiguous()


def _train_step_fn(net, *, lam: float, clip_norm: float, lr: float, aux_lr: float):
  """LIC_TCM train.py's step on `net` (put in train mode), as `step(x) -> (loss, bpp, mse)`.

  The step: forward, rate-distortion loss backward, gradient clipping at `clip_norm`, Adam (`lr`)
  on every parameter but the factorized prior's `quantiles`, then the aux loss backward and its
  own Adam (`aux_lr`) step on the `quantiles`. It returns the forward's metrics (detached), i.e.
  those of the weights before the update, as our train step does.
  """
  import torch
  net.train()
  named = dict(net.named_parameters())
  main = [p for n, p in sorted(named.items()) if not n.endswith(".quantiles")]
  aux = [p for n, p in sorted(named.items()) if n.endswith(".quantiles")]
  optimizer = torch.optim.Adam(main, lr=lr)
  aux_optimizer = torch.optim.Adam(aux, lr=aux_lr) if aux else None

  def step(x):
    optimizer.zero_grad()
    if aux_optimizer is not None:
      aux_optimizer.zero_grad()
    loss, bpp, mse = _rd_loss(net(x), x, lam)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), clip_norm)
    optimizer.step()
    if aux_optimizer is not None:
      net.aux_loss().backward()
      aux_optimizer.step()
    return loss.detach(), bpp.detach(), mse.detach()

  return step


def time_train_step(directory, N: int, batch: int, crop: int, repeats: int,
                    threads: int | None = None, *, M: int = 320, num_slices: int = 5,
                    lam: float = LAM, clip_norm: float = 1.0, lr: float = 1e-4,
                    aux_lr: float = 1e-3, seed: int = 0, state_dict: dict | None = None) -> dict:
  """Times one reference training step as LIC_TCM train.py takes it (`_train_step_fn`).

  The batch is the one `icmh bench train` uses (uniform uint8 pixels from numpy's
  default_rng(0)), [batch, 3, crop, crop] in [0, 1].

  Returns:
    dict(step_s, first_step_s, runs_s, images_per_s, threads).
  """
  TCM = load_reference(directory)
  check_train_shape(batch, crop)
  with _torch_threads(threads) as n_threads:
    net, weights = _build(TCM, N, M, num_slices, state_dict, seed)
    step = _train_step_fn(net, lam=lam, clip_norm=clip_norm, lr=lr, aux_lr=aux_lr)
    x = _to_batch(np.random.default_rng(0).integers(0, 256, (batch, crop, crop, 3), np.uint8))
    t = harness.measure("torch_train_step", lambda: step(x), repeats=repeats, warmup=1)
  return dict(step_s=t.median_s, first_step_s=t.first_call_s, runs_s=t.runs_s,
              images_per_s=batch / t.median_s, threads=n_threads, weights=weights)


class _NoiseFeed:
  """Makes the reference's entropy models add given U(-½, ½) noise instead of drawing their own.

  compressai's `EntropyModel.quantize(inputs, "noise")` is where the training noise is drawn:
  once per forward by the factorized prior (on z laid out [C, 1, B·h·w]) and then once per Ch-ARM
  slice by the Gaussian conditional (on y's slice, NCHW), in that order (LIC_TCM `TCM.forward`).
  `load` queues one step's noise in those layouts; each such call takes the next tensor, and a
  shape that does not match, or a count that does not, raises instead of training on other noise.
  """

  def __init__(self, net, num_slices: int):
    self.num_slices, self.pending = num_slices, []
    for module in (net.entropy_bottleneck, net.gaussian_conditional):
      module.quantize = self._fed(module.quantize)

  def _fed(self, quantize):
    def fed(inputs, mode, means=None):
      if mode != "noise":
        return quantize(inputs, mode, means)
      if not self.pending:
        raise IcmhError("the reference drew more training noise in one step than was fed "
                        f"(1 z + {self.num_slices} y slices): its forward is not LIC_TCM's")
      noise = self.pending.pop(0)
      if tuple(noise.shape) != tuple(inputs.shape):
        raise IcmhError(f"fed noise of shape {tuple(noise.shape)} for the reference's "
                        f"{tuple(inputs.shape)}")
      return inputs + noise
    return fed

  def check_used(self) -> None:
    """Raises unless the last step took every tensor `load` queued."""
    if self.pending:
      raise IcmhError(f"the reference left {len(self.pending)} of a step's noise tensors unused")

  def load(self, noise: dict) -> None:
    """Queues one step's noise {"y": [B, h, w, M], "z": [B, h', w', C]} (NHWC, float32)."""
    import torch
    self.check_used()
    z = torch.from_numpy(np.ascontiguousarray(noise["z"], np.float32))
    z = z.permute(3, 0, 1, 2).reshape(z.shape[-1], 1, -1).contiguous()
    y = torch.from_numpy(np.ascontiguousarray(noise["y"], np.float32)).permute(0, 3, 1, 2)
    self.pending = [z] + [s.contiguous() for s in y.chunk(self.num_slices, 1)]


def train_curves(directory, N: int, M: int, num_slices: int, batches, *, lam: float,
                 clip_norm: float, lr: float, aux_lr: float, state_dict: dict | None = None,
                 seed: int = 0, threads: int | None = None, noise=None) -> dict:
  """Trains the reference on `batches` (`_train_step_fn`, one step per batch) and records it.

  Args:
    directory: LIC_TCM checkout.
    N, M, num_slices: the reference TCM's widths.
    batches: an iterable (with len) of uint8 [B, H, W, 3] batches; picklable when this runs in
      `isolated` (icmh_jax.benchmarks.train_compare.Batches redraws them in the child).
    lam, clip_norm, lr, aux_lr: the loss and optimiser knobs of `_train_step_fn`.
    state_dict: initial weights (`convert.tcm.to_reference`); None: the reference's own init.
    seed: torch.manual_seed before building (its init and, without `noise`, its noise draws).
    threads: torch CPU threads (default: every usable core).
    noise: None (the reference draws its own training noise), or an iterable giving, per batch,
      the noise {"y": [B, h, w, M], "z": [B, h', w', C]} to add instead (`_NoiseFeed`;
      train_compare.SharedNoise: what our train step drew).
  Returns:
    dict(loss, bpp, mse, step_s, digests: one per step; wall_s, threads, weights), `digests`
    being `harness.digest` of each batch as it was fed.
  """
  from tqdm import tqdm
  TCM = load_reference(directory)
  curves = {k: [] for k in ("loss", "bpp", "mse", "step_s", "digests")}
  start = time.perf_counter()
  with _torch_threads(threads) as n_threads:
    net, weights = _build(TCM, N, M, num_slices, state_dict, seed)
    step = _train_step_fn(net, lam=lam, clip_norm=clip_norm, lr=lr, aux_lr=aux_lr)
    feed = _NoiseFeed(net, num_slices) if noise is not None else None
    noises = iter(noise) if noise is not None else None
    for u8 in tqdm(batches, desc="reference", unit="step", file=sys.stderr, dynamic_ncols=True):
      check_train_shape(u8.shape[0], u8.shape[1])
      if feed is not None:
        step_noise = next(noises, None)
        if step_noise is None:
          raise IcmhError(f"fed noise for {len(curves['loss'])} steps, but {len(batches)} batches")
        feed.load(step_noise)
      t = time.perf_counter()
      metrics = [float(v) for v in step(_to_batch(u8))]
      curves["step_s"].append(time.perf_counter() - t)
      for k, v in zip(("loss", "bpp", "mse"), metrics):
        curves[k].append(v)
      curves["digests"].append(harness.digest(u8))
    if feed is not None:
      feed.check_used()
  return dict(**curves, wall_s=time.perf_counter() - start, threads=n_threads, weights=weights)


def speedup(torch_s: float, jax_s: float) -> float:
  """How many times faster JAX is: torch seconds / JAX seconds (> 1 means JAX is faster)."""
  return round(torch_s / jax_s, 2) if jax_s > 0 else float("inf")
