"""Module unit tests of a LIC-TCM golden set (`unit/<name>/...`), run against our layers.

Each unit's module is rebuilt from the constructor string the set records (for example
`tcm.ConvTransBlock(conv_dim=16, trans_dim=16, head_dim=8, window_size=8, ..., type='W')`), its
parameters come from `unit/<name>/param/<reference key>` through the LIC-TCM converter, and its
output and named intermediates are compared (NCHW arrays are transposed to NHWC).
"""

import ast
import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax import layers
from icmh_jax.convert import tcm as convert_tcm

RTOL = 1e-4


def parse_constructor(text: str) -> tuple[str, list, dict]:
  """`pkg.Name(1, 2, k='v')  (notes)` -> ("Name", [1, 2], {"k": "v"})."""
  m = re.match(r"^\s*([\w.]+)\((.*?)\)", text)
  if not m:
    raise ValueError(f"cannot parse a unit module constructor from {text!r}")
  call = ast.parse(f"f({m.group(2)})", mode="eval").body
  args = [ast.literal_eval(a) for a in call.args]
  kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
  return m.group(1).rsplit(".", 1)[-1], args, kwargs


class _GDNUnit(nn.Module):
  """A GDN named `gdn` (the reference prefixes GDN unit keys with `gdn.`)."""
  channels: int
  inverse: bool

  @nn.compact
  def __call__(self, x):
    return layers.GDN(self.channels, self.inverse, name="gdn")(x)


def _arg(args, kwargs, i, name, default=None):
  if name in kwargs:
    return kwargs[name]
  return args[i] if len(args) > i else default


def build_module(text: str) -> nn.Module:
  """Our Flax module for a unit test's reference constructor string."""
  name, a, k = parse_constructor(text)
  if name == "ConvTransBlock":
    return layers.ConvTransBlock(_arg(a, k, 0, "conv_dim"), _arg(a, k, 1, "trans_dim"),
                                 _arg(a, k, 2, "head_dim"), _arg(a, k, 3, "window_size"),
                                 shifted=_arg(a, k, 5, "type", "W") != "W")
  if name == "WMSA":
    return layers.WindowAttention(_arg(a, k, 0, "input_dim"), _arg(a, k, 2, "head_dim"),
                                  _arg(a, k, 3, "window_size"), _arg(a, k, 4, "type") != "W")
  if name == "SWAtten":
    return layers.SWAtten(_arg(a, k, 1, "output_dim"), _arg(a, k, 2, "head_dim"),
                          _arg(a, k, 3, "window_size"), _arg(a, k, 5, "inter_dim", 192))
  if name == "ResidualBlockWithStride":
    return layers.ResidualBlockWithStride(_arg(a, k, 1, "out_ch"), _arg(a, k, 2, "stride", 2))
  if name == "ResidualBlockUpsample":
    return layers.ResidualBlockUpsample(_arg(a, k, 1, "out_ch"), _arg(a, k, 2, "upsample", 2))
  if name == "subpel_conv3x3":
    return layers.SubpelConv(_arg(a, k, 1, "out_ch"), _arg(a, k, 2, "r", 1))
  if name in ("conv3x3", "conv1x1", "conv"):
    size = {"conv3x3": 3, "conv1x1": 1}.get(name) or _arg(a, k, 2, "kernel_size", 5)
    return layers.conv(_arg(a, k, 1, "out_channels"), size, _arg(a, k, 3, "stride", 1))
  if name == "GDN":
    return _GDNUnit(_arg(a, k, 0, "in_channels"), bool(_arg(a, k, 1, "inverse", False)))
  raise ValueError(f"no port for unit module {name!r}")


# Reference intermediate name -> our captured submodule name; `_nhwc` ones are already NHWC.
_INTERMEDIATES = {
    "conv1_1_out": "conv1_1", "conv1_2_out": "conv1_2", "conv_block_out": "conv_block",
    "trans_block_out_nhwc": "trans_block", "in_conv_out": "in_conv",
    "non_local_block_out": "non_local_block", "conv_a_out": "conv_a", "conv_b_out": "conv_b",
}


def _nhwc(a):
  return np.transpose(a, (0, 2, 3, 1)) if a.ndim == 4 else a


def check_units(report, npz, meta) -> None:
  """Adds one row per unit output / intermediate of the set to `report`."""
  for name, info in meta["unit_tests"].items():
    pre = f"unit/{name}/"
    if name == "gelu":
      out = layers.gelu(jnp.asarray(npz[pre + "input"]))
      report.close(pre + "output", out, npz[pre + "output"], RTOL)
      continue
    if name in ("gaussian_conditional", "eb_likelihood"):
      continue  # entropy-model units, checked in golden/tcm.py with the model's parameters
    try:
      module = build_module(info["module"])
    except ValueError as e:  # a unit this port does not know: a failed row, not a crash
      report.check(pre + "output", False, str(e))
      continue
    nchw = info.get("layout") == "NCHW"
    x = npz[pre + "input"]
    x = _nhwc(x) if nchw else x
    sd = {k[len(pre + "param/"):]: npz[k] for k in npz.files if k.startswith(pre + "param/")}
    template = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.asarray(x))["params"]
    params = convert_tcm.from_reference(sd, template)
    # jitted: op by op, a transformer unit dispatches (and compiles) thousands of tiny programs
    out, state = jax.jit(functools.partial(module.apply, capture_intermediates=True))(
        {"params": params}, jnp.asarray(x))
    expected = npz[pre + "output"]
    report.close(pre + "output", out, _nhwc(expected) if nchw else expected, RTOL)
    for inter in info.get("intermediates") or []:
      got = state["intermediates"][_INTERMEDIATES[inter]]["__call__"][0]
      ref = npz[pre + inter]
      report.close(pre + inter, got, ref if inter.endswith("_nhwc") else _nhwc(ref), RTOL)
    if name.startswith("wmsa"):
      ws = module.window_size
      ri, ci = layers.attention.relative_index(ws)
      report.close(pre + "relative_embedding", params["relative_position_params"][:, ri, ci],
                   npz[pre + "relative_embedding"], RTOL)
      if pre + "attn_mask" in npz.files:
        h, w = x.shape[1:3]
        mask = layers.attention.shifted_window_mask(-(-h // ws), -(-w // ws), ws)
        report.exact(pre + "attn_mask", mask[None, None].astype(np.uint8), npz[pre + "attn_mask"])
