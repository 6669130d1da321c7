"""LIC-TCM checkpoints: reference state_dict (PyTorch names and layouts) <-> Flax params.

Our Flax modules carry the reference's names (`g_a/0/conv1`, `trans_block/msa/...`), so the key
table is a short list of explicit rules, applied per leaf of the Flax tree:

  Flax path                                  reference key                         layout
  .../<conv>/kernel  [kh, kw, in, out]       .../<conv>.weight [out, in, kh, kw]   transpose (3,2,0,1)
  .../<dense>/kernel [in, out]               .../<dense>.weight [out, in]          transpose
  .../ln1|ln2/scale                          .../ln1|ln2.weight                    as is
  .../bias, beta, gamma, relative_position_params, quantiles                       as is
  ch_arm/atten_mean_{k}/...                  atten_mean.{k}.0....  (nn.Sequential of one SWAtten)
  ch_arm/{cc_mean,cc_scale,lrp}_transforms_{k}/...   {...}_transforms.{k}....
  entropy_bottleneck/{matrices,biases,factors}_{i}   entropy_bottleneck.{...}.{i}

The reference's buffers (GDN pedestals and bounds, CDF tables, scale table, likelihood bounds) are
not parameters: they are accepted and ignored on import (`BUFFER_SUFFIXES`) and derived from the
parameters by functions in this package instead.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.errors import CheckpointError
from icmh_jax.models.tcm import TCM

BUFFER_SUFFIXES = (
    ".pedestal", ".lower_bound.bound", "._quantized_cdf", "._offset", "._cdf_length",
    "entropy_bottleneck.target", ".likelihood_lower_bound.bound", ".scale_table",
    ".scale_bound", ".lower_bound_scale.bound",
)

# (regex on the "/"-joined Flax module path, replacement with "." separators), first match wins.
_PATH_RULES = (
    (r"^ch_arm/atten_(mean|scale)_(\d+)(/|$)", r"atten_\1.\2.0\3"),
    (r"^ch_arm/(cc_mean|cc_scale|lrp)_transforms_(\d+)(/|$)", r"\1_transforms.\2\3"),
    (r"^entropy_bottleneck/(matrices|biases|factors)_(\d+)$", r"entropy_bottleneck/\1.\2"),
)


def is_buffer(ref_key: str) -> bool:
  """True for reference state_dict entries that are buffers, not parameters."""
  return ref_key.endswith(BUFFER_SUFFIXES)


def ref_key(path: tuple[str, ...], ndim: int) -> tuple[str, tuple[int, ...] | None]:
  """Reference key and transpose (Flax -> reference) for one Flax leaf.

  Args:
    path: names from the params root to the leaf, e.g. ("g_a", "0", "conv1", "kernel").
    ndim: the leaf's rank (chooses the conv / dense transpose).

  Returns:
    (reference key, axes for np.transpose from the Flax layout, or None).
  """
  *mods, leaf = path
  joined = "/".join(mods)
  if mods and mods[0] == "entropy_bottleneck":
    joined = "/".join(mods + [leaf])
    leaf = None
  for pattern, repl in _PATH_RULES:
    joined, n = re.subn(pattern, repl, joined)
    if n:
      break
  base = joined.replace("/", ".")
  if leaf is None:
    return base, None
  prefix = f"{base}." if base else ""
  if leaf == "kernel":
    return f"{prefix}weight", {4: (3, 2, 0, 1), 2: (1, 0)}[ndim]
  if leaf == "scale":  # LayerNorm
    return f"{prefix}weight", None
  return f"{prefix}{leaf}", None


def reference_shapes(template) -> dict[str, tuple[int, ...]]:
  """{reference key: reference-layout shape} of a Flax params tree or its `jax.eval_shape`."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(template)[0]:
    shape = tuple(leaf.shape)
    key, axes = ref_key(tuple(p.key for p in path), len(shape))
    out[key] = tuple(shape[i] for i in axes) if axes else shape
  return out


def _inverse(axes):
  return tuple(int(i) for i in np.argsort(axes))


def to_reference(params) -> dict[str, np.ndarray]:
  """Flax params -> reference state_dict (parameters only, reference layouts).

  Args:
    params: the Flax params tree (without the "params" collection wrapper).

  Returns:
    {reference key: float32 numpy array}.
  """
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = tuple(p.key for p in path)
    a = np.asarray(leaf)
    key, axes = ref_key(names, a.ndim)
    out[key] = np.ascontiguousarray(a.transpose(axes) if axes else a)
  return out


def from_reference(state_dict: dict, template) -> dict:
  """Reference state_dict -> Flax params shaped like `template`.

  Args:
    state_dict: {reference key: array} in PyTorch layouts (OIHW convs, (out, in) linears).
    template: a Flax params tree (or `jax.eval_shape` of one) giving the keys and shapes.

  Returns:
    the Flax params tree with numpy float32 leaves.

  Raises:
    CheckpointError: listing missing and unexpected keys and shape mismatches.
  """
  flat, treedef = jax.tree_util.tree_flatten_with_path(template)
  leaves, missing, bad, used = [], [], [], set()
  for path, leaf in flat:
    names = tuple(p.key for p in path)
    key, axes = ref_key(names, len(leaf.shape))
    if key not in state_dict:
      missing.append(key)
      leaves.append(None)
      continue
    used.add(key)
    a = np.asarray(state_dict[key])
    a = a.transpose(_inverse(axes)) if axes else a
    if tuple(a.shape) != tuple(leaf.shape):
      bad.append(f"{key}: checkpoint {tuple(np.asarray(state_dict[key]).shape)} vs model "
                 f"{tuple(leaf.shape)} (as {'/'.join(names)})")
    leaves.append(a.astype(np.float32))
  unexpected = sorted(k for k in state_dict if k not in used and not is_buffer(k))
  if missing or unexpected or bad:
    parts = []
    if missing:
      parts.append(f"missing keys ({len(missing)}): {_first(missing, ', ')}")
    if unexpected:
      parts.append(f"unexpected keys ({len(unexpected)}): {_first(unexpected, ', ')}")
    if bad:
      parts.append(f"shape mismatches ({len(bad)}): {_first(bad, '; ')}")
    raise CheckpointError("LIC-TCM state_dict does not fit the model: " + " | ".join(parts))
  return jax.tree_util.tree_unflatten(treedef, leaves)


def _first(items, sep, n=5) -> str:
  """The first `n` items (a whole-model mismatch has hundreds), then how many more."""
  return sep.join(items[:n]) + (f"{sep}... and {len(items) - n} more" if len(items) > n else "")


# The tensors the sizes are read from, by name: g_a's first block maps 3 -> 2N channels and h_a
# takes y (M channels); there is one cc_mean_transforms entry per Ch-ARM slice.
_N_KEY, _M_KEY = "g_a.0.conv1.weight", "h_a.0.conv1.weight"
_SLICE_KEY = re.compile(r"^cc_mean_transforms\.(\d+)\.")


def infer_sizes(state_dict: dict) -> dict:
  """N, M and num_slices of a reference LIC-TCM state_dict, read from named tensors.

  Args:
    state_dict: {reference key: array (numpy or torch)} in PyTorch layouts.

  Returns:
    {"N", "M", "num_slices"}, each an int, or None where the tensors it is read from are absent.
  """
  sizes = {"N": None, "M": None, "num_slices": None}
  if _N_KEY in state_dict:
    sizes["N"] = int(state_dict[_N_KEY].shape[0]) // 2
  if _M_KEY in state_dict:
    sizes["M"] = int(state_dict[_M_KEY].shape[1])
  slices = {int(m.group(1)) for m in map(_SLICE_KEY.match, state_dict) if m}
  if slices:
    sizes["num_slices"] = max(slices) + 1
  return sizes


def resolve_sizes(state_dict: dict, **given) -> dict:
  """`infer_sizes`, checked against the sizes a user gave (None: not given).

  Raises:
    CheckpointError: a given size disagrees with the state_dict, or a size is neither given nor
      readable from it.
  """
  inferred, source = infer_sizes(state_dict), {"N": _N_KEY, "M": _M_KEY,
                                               "num_slices": "cc_mean_transforms.<k>"}
  out = {}
  for name, value in inferred.items():
    want = given.get(name)
    if value is None and want is None:
      raise CheckpointError(f"cannot read {name} from the state_dict (no {source[name]}); it is "
                            "not a LIC-TCM state_dict, or give the size explicitly")
    if value is not None and want is not None and want != value:
      shape = (tuple(state_dict[source[name]].shape) if source[name] in state_dict else
               f"{value} entries")
      raise CheckpointError(f"{name}={want} was given but the state_dict has {name}={value} "
                            f"({source[name]}: {shape})")
    out[name] = value if value is not None else want
  return out


def convert_checkpoint(state_dict: dict, N: int = 128, M: int = 320, num_slices: int = 5,
                       **tcm_kwargs):
  """A reference LIC-TCM state_dict -> (TCM module, Flax params).

  Args:
    state_dict: {reference key: array}.
    N, M, num_slices: the checkpoint's sizes (LIC_TCM releases: N=64 or 128, M=320, 5 slices).
    **tcm_kwargs: further TCM fields (g_s_in for the ICMH-FF additional codec, ...).

  Raises:
    CheckpointError: the state_dict does not fit (missing / unexpected keys, shapes).
  """
  model = TCM(N=N, M=M, num_slices=num_slices, **tcm_kwargs)
  template = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 256, 256, 3)))
  return model, from_reference(state_dict, template["params"])
