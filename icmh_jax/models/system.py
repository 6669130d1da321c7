"""The System API shared by every ICMH system: one object per (name, model config).

A system is a frozen-or-trained machine codec (SA-ICM, a LIC-TCM) in `params["base"]` plus, for the
human-layer systems (icmh_ff, fr_icmh, pr_icmh), an additional codec in `params["additional"]`.
`apply` is the training / estimation forward; `compress` / `decompress` write and read one
two-layer `.icmh` file (`icmh_jax.models.scalable`, which knows no system class: the dependency
runs one way, system -> scalable -> coding). The training loss of every system is

  loss = bpp(out.likelihoods[system.trained_layer]) + lam * 255**2 * mse(m * x, m * out.x_hat)

(m = SAM edge mask for SA-ICM, 1 otherwise): `out.x_hat` is always the trained layer's
reconstruction (for tcm / sa_icm it equals `x_hat_m`), so no caller needs to know system names.
"""

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.layers.init import torch_default_init
from icmh_jax.models import scalable
from icmh_jax.models.tcm import TCM

@flax.struct.dataclass
class SystemOutput:
  """A system's forward.

  Attributes:
    x_hat: [B, H, W, 3] reconstruction of the trained layer, unclamped (the human reconstruction
      for the human-layer systems, the machine one for tcm / sa_icm).
    x_hat_m: [B, H, W, 3] SA-ICM's machine reconstruction, unclamped.
    likelihoods: {"machine": {"y", "z"}, "human": {"y", "z"}}; "human" is {} for tcm / sa_icm.
  """
  x_hat: jax.Array
  x_hat_m: jax.Array
  likelihoods: dict


class System:
  """Base class of the five systems; subclasses fill the additional-codec hooks.

  Attributes:
    name: registry name (`tcm`, `sa_icm`, `icmh_ff`, `fr_icmh`, `pr_icmh`).
    config: resolved model config (see `icmh_jax.models.registry`).
    trained_layer: "machine" (tcm, sa_icm) or "human" (the others): whose rate the loss counts.
  """

  trained_layer = "machine"

  def __init__(self, name: str, config: dict[str, Any]):
    self.name = name
    self.config = dict(config)
    self._modules = {}

  def __repr__(self):
    return f"{type(self).__name__}({self.name!r}, {self.config})"

  # Equal by value: two systems of one name and config build the same modules, so a jitted step
  # traced for one serves the other (train.step caches its steps by system).
  def __eq__(self, other):
    return type(self) is type(other) and (self.name, self.config) == (other.name, other.config)

  def __hash__(self):
    return hash((type(self), self.name, repr(sorted(self.config.items()))))

  @property
  def base(self) -> nn.Module:
    """The machine codec module, built on first use."""
    if "base" not in self._modules:
      self._modules["base"] = self.base_module()
    return self._modules["base"]

  @property
  def additional(self) -> nn.Module:
    """The additional codec module (human-layer systems only), built on first use."""
    if "additional" not in self._modules:
      self._modules["additional"] = self.additional_module()
    return self._modules["additional"]

  def base_module(self) -> nn.Module:
    """SA-ICM: a LIC-TCM with N_machine, M, num_slices_m."""
    c = self.config
    return TCM(N=c["N_machine"], M=c["M"], num_slices=c["num_slices_m"], **self.tcm_widths())

  def tcm_widths(self) -> dict[str, Any]:
    """TCM keyword arguments shared by both codecs (transformer / hyperprior / Ch-ARM widths)."""
    c = self.config
    return dict(max_support_slices=c["max_support_slices"], depths=c["depths"],
                head_dims=c["head_dims"], window_size=c["window_size"],
                hyper_window_size=c["hyper_window_size"], z_channels=c["z_channels"],
                inter_dim=c["inter_dim"], cc_hidden=c["cc_hidden"])

  @property
  def has_additional(self) -> bool:
    """Whether the system has a human layer (an additional codec in params["additional"])."""
    return self.trained_layer == "human"

  def trainable_key(self) -> str:
    """The params subtree the optimiser sees: "base" (tcm, sa_icm) or "additional"."""
    return "additional" if self.has_additional else "base"

  def noise_shapes(self, image_shape) -> dict:
    """Shapes {"y": (h, w, M), "z": (h', w', z_channels)} of one example's training noise for
    the trained codec, given an input [..., H, W, 3]: y at 1/16 and z at 1/64 of the image
    (each stride-2 stage rounds up)."""
    codec = self.additional if self.has_additional else self.base
    height, width = tuple(image_shape)[-3:-1]
    down = lambda n, f: -(-n // f)
    return {"y": (down(height, 16), down(width, 16), codec.M),
            "z": (down(height, 64), down(width, 64), codec.z_channels)}

  @property
  def machine_context(self) -> bool:
    """Whether the additional Ch-ARM also sees the machine latent y_hat_m (`residual_context=
    "machine"`): the one place the forward, the encoder and the decoder read it from."""
    return self.config["residual_context"] == "machine"

  def context(self, y_hat_m):
    """The additional Ch-ARM's extra support: y_hat_m [B, h, w, M] or None."""
    return y_hat_m if self.machine_context else None

  def additional_tcm(self, g_s_in=None) -> nn.Module:
    """The additional codec: a LIC-TCM with N, M = 64 N_a and N_a slices, whose Ch-ARM sees
    y_hat_m (M more support channels) when `machine_context`.

    Args:
      g_s_in: channels its g_s takes (the machine M for the latent-fusion systems).
    """
    c = self.config
    return TCM(N=c["N"], M=c["num_slices_a"] * c["slice_width"], num_slices=c["num_slices_a"],
               g_s_in=g_s_in, extra_support_channels=c["M"] if self.machine_context else 0,
               **self.tcm_widths())

  def run_base(self, base_params, x, *, train: bool, rng=None, noise=None,
               return_intermediates: bool = False):
    """Machine codec forward on x [B, H, W, 3]; returns the TCM output (x_hat, y_hat, ...)."""
    rngs = {"noise": rng} if rng is not None else None
    return self.base.apply({"params": base_params}, x, train=train, noise=noise, rngs=rngs,
                           return_intermediates=return_intermediates)

  def init(self, rng, image_shape) -> dict:
    """Random parameters.

    Args:
      rng: a PRNG key.
      image_shape: [B, H, W, 3] or [H, W, 3] of a (padded) input.

    Returns:
      {"base": ...} (tcm, sa_icm) or {"base": ..., "additional": ...}.
    """
    rng_b, rng_a = jax.random.split(rng)
    params = {"base": self.init_base(rng_b, image_shape)}
    if self.has_additional:
      params["additional"] = self.init_additional(rng_a, image_shape)
    return params

  def init_base(self, rng, image_shape) -> dict:
    """Random parameters of the machine codec (`params["base"]`)."""
    x = _zeros_image(image_shape)
    params = self.base.lazy_init(rng, jax.ShapeDtypeStruct(x.shape, x.dtype), train=False)
    return torch_default_init(params["params"], rng)

  def init_additional(self, rng, image_shape) -> dict:
    """Random parameters of the additional codec (`params["additional"]`)."""
    x = _zeros_image(image_shape)
    # Stand-ins of the machine outputs: the additional codec's shapes do not depend on them.
    b, h, w, _ = x.shape
    y_hat_m = jnp.zeros((b, h // 16, w // 16, self.config["M"]), x.dtype)
    spec = lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype)  # lazy_init: shapes only, no forward
    params = self.additional.lazy_init(rng, spec(x), spec(x), spec(y_hat_m), train=False,
                                       method=self.forward_method)
    return torch_default_init(params["params"], rng)

  def apply(self, params, x, *, train: bool, rng=None, noise=None) -> SystemOutput:
    """Training / estimation forward.

    Args:
      params: from `init` (or a checkpoint).
      x: [B, H, W, 3] float32 in [0, 1], H and W multiples of `pad_multiple` (or 64 at least).
      train: noisy likelihoods (True) or rounded ones (False) for the trained codec.
      rng: PRNG key for the training noise (train=True, noise=None).
      noise: explicit uniform noise {"y", "z"} (NHWC) for the trained codec.

    Returns:
      SystemOutput.
    """
    if not self.has_additional:
      base = self.run_base(params["base"], x, train=train, rng=rng, noise=noise)
      return SystemOutput(x_hat=base.x_hat, x_hat_m=base.x_hat,
                          likelihoods={"machine": dict(base.likelihoods), "human": {}})
    # The base is frozen: stop_gradient keeps any gradient from reaching it even when a caller
    # differentiates w.r.t. all params, and its eval forward is exactly what the decoder sees.
    base = self.run_base(jax.lax.stop_gradient(params["base"]), x, train=False)
    out = self.run_additional(params["additional"], x, base, train=train, rng=rng, noise=noise)
    return SystemOutput(x_hat=out["x_hat"], x_hat_m=base.x_hat,
                        likelihoods={"machine": dict(base.likelihoods),
                                     "human": dict(out["out"].likelihoods)})

  def run_additional(self, params_a, x, base, *, train: bool, rng=None, noise=None,
                     return_intermediates: bool = False) -> dict:
    """The human layer's forward given the machine codec's output `base`.

    Returns:
      {"x_hat": [B, H, W, 3] unclamped human reconstruction, "out": the additional TCM's output
      (likelihoods {"y", "z"}, y_hat, ...), "g_s_in": the latent its g_s decoded}.
    """
    rngs = {"noise": rng} if rng is not None else None
    return self.additional.apply({"params": params_a}, x, base.x_hat, base.y_hat, train=train,
                                 noise=noise, return_intermediates=return_intermediates,
                                 rngs=rngs, method=self.forward_method)

  def aux_loss(self, params) -> jax.Array:
    """Sum of the trained codec's factorized-prior aux losses (only `quantiles` get gradients)."""
    key = self.trainable_key()
    module = self.base if key == "base" else self.additional
    return module.apply({"params": params[key]},
                        method=lambda m: m.entropy_bottleneck.aux_loss())

  def additional_module(self) -> nn.Module:
    """The additional codec (a `TCM`, see `additional_tcm`)."""
    raise NotImplementedError

  def forward_method(self, m: nn.Module, x, x_hat_m, y_hat_m, *, train, noise=None,
                     return_intermediates=False) -> dict:
    """The human layer's forward, run inside `additional.apply(..., method=self.forward_method)`
    with `m` the bound additional codec: (x, machine outputs) -> `run_additional`'s dict."""
    raise NotImplementedError

  def encode_human(self, params_a, x, y_hat_m, x_hat_m) -> list:
    """Human layer streams of a padded x [1, H, W, 3], given the decoder's machine outputs
    (y_hat_m [1, H/16, W/16, M] after LRP, x_hat_m [1, H, W, 3] unclamped)."""
    raise NotImplementedError

  def decode_human(self, params_a, streams: list, z_shape, y_hat_m, x_hat_m):
    """Inverse of `encode_human`: returns the unclamped human x_hat [1, H, W, 3]."""
    raise NotImplementedError

  def compress(self, params, image: np.ndarray) -> bytes:
    """Codes image [H, W, 3] float32 in [0, 1] into one two-layer `.icmh` file
    (`scalable.compress`)."""
    return scalable.compress(self, params, image)

  def decompress(self, params, data: bytes, layer: str = "human") -> np.ndarray:
    """Decodes a `.icmh` file (`scalable.decompress`); layer "machine" reads layer 0 only.
    Returns [H, W, 3] in [0, 1]."""
    return scalable.decompress(self, params, data, layer=layer)

  def param_counts(self, image_shape=(1, 256, 256, 3)) -> dict[str, int]:
    """Parameter counts {"base", "additional"} from `jax.eval_shape` (nothing materialised)."""
    shapes = lambda init: jax.eval_shape(lambda rng: init(rng, image_shape), jax.random.key(0))
    count = lambda t: int(sum(np.prod(a.shape) for a in jax.tree_util.tree_leaves(t)))
    key = (self.base, tuple(image_shape))
    if key not in _BASE_COUNTS:  # every human-layer system of a study shares one base
      _BASE_COUNTS[key] = count(shapes(self.init_base))
    additional = count(shapes(self.init_additional)) if self.has_additional else 0
    return {"base": _BASE_COUNTS[key], "additional": additional}


_BASE_COUNTS = {}


def _zeros_image(image_shape):
  shape = tuple(image_shape)
  return jnp.zeros(shape if len(shape) == 4 else (1, *shape), jnp.float32)
