"""`icmh golden-check icmh_ff PATH.npz`: our ICMH-FF eval forward vs the public PyTorch code.

Both branches' weights are rebuilt from the JSON rule (`README.md` beside the set), converted with
the LIC-TCM converter (the additional branch is a TCM with M = 64 m and g_s in = M of the machine
codec) and run through `get_system("icmh_ff", ...)`. Every array of the set is compared (rtol
1e-4 of its max |value|): the machine branch `m/*`, the additional branch `a/*`, the fused latent
and x_hat, the estimated bpp per layer, plus the rounding decisions round(y - mu) exactly. Sizes
(N, m, M, slices, depths, head dims, window) are read from the JSON, never assumed.
"""

import re
import zlib

import numpy as np

from icmh_jax.golden.report import GoldenReport
from icmh_jax.golden.sets import load_set

SET_PREFIX = {"m": "machine", "a": "additional"}


def rebuild_state_dicts(meta: dict, npz) -> dict[str, dict[str, np.ndarray]]:
  """{"machine": state_dict, "additional": state_dict} in PyTorch names and layouts."""
  seed, sds = meta["weights"]["set_seed"], {"machine": {}, "additional": {}}
  for key, info in meta["weights"]["keys"].items():
    if info["kind"] == "stored":
      value = npz["param/" + key]
    else:
      rng = np.random.default_rng(zlib.crc32(f"{seed}:{key}".encode()))
      value = (rng.standard_normal(info["shape"]).astype(np.float32) * np.float32(info["scale"])
               + np.float32(info["offset"]))
    branch, name = key.split(".", 1)
    sds[branch][name] = value
  return sds


def model_config(meta: dict) -> dict:
  """Our `icmh_ff` model config from the set's constructor arguments."""
  cm, ca = meta["config"]["machine"], meta["config"]["additional"]
  slice_width = cm["M"] // cm["num_slices"]
  if ca.get("latent_channels", ca["num_slices"] * slice_width) != ca["num_slices"] * slice_width:
    raise ValueError(f"additional latent has {ca['latent_channels']} channels, expected "
                     f"{ca['num_slices']} * {slice_width}")
  if ca.get("g_s_in_channels", cm["M"]) != cm["M"]:
    raise ValueError(f"additional g_s takes {ca['g_s_in_channels']} channels, expected M={cm['M']}")
  return dict(N_machine=cm["N"], M=cm["M"], num_slices_m=cm["num_slices"], N=ca["N"],
              num_slices_a=ca["num_slices"], slice_width=slice_width,
              max_support_slices=cm["max_support_slices"], depths=tuple(cm["config"]),
              head_dims=tuple(cm["head_dim"]), window_size=cm["window_size"])


def _branch_arrays(out, prefix: str) -> dict[str, np.ndarray]:
  """Our arrays of one branch under the set's names, NCHW like the set."""
  inter = out.intermediates
  arrays = {"y": out.y, "z": out.z, "z_hat": out.z_hat, "z_likelihoods": out.likelihoods["z"],
            "latent_means": inter["latent_means"], "latent_scales": inter["latent_scales"],
            "y_likelihoods": out.likelihoods["y"], "y_hat": out.y_hat}
  width = out.y.shape[-1] // len(inter["slices"])
  for k, rec in enumerate(inter["slices"]):
    arrays[f"slice{k}/likelihoods"] = out.likelihoods["y"][..., k * width:(k + 1) * width]
    for name in ("mu", "scale", "y_hat_pre_lrp", "lrp", "y_hat"):
      arrays[f"slice{k}/{name}"] = rec[name]
  return {f"{prefix}/{k}": _nchw(v) for k, v in arrays.items()}


def _nchw(a) -> np.ndarray:
  a = np.asarray(a)
  return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a


def _bpp(likelihoods: dict, pixels: int) -> float:
  return float(sum(np.sum(np.log(np.asarray(l, np.float64))) for l in likelihoods.values())
               / (-np.log(2.0) * pixels))


def check(npz_path, json_path) -> GoldenReport:
  """Runs the check; returns the report (a row per array)."""
  import jax
  from icmh_jax.convert.icmh_ff import from_reference
  from icmh_jax.models.registry import get_system

  npz, meta = load_set(npz_path, json_path)
  report = GoldenReport("icmh_ff")
  system = get_system("icmh_ff", model_config(meta))
  x = np.asarray(npz["x"], np.float32).transpose(0, 2, 3, 1)
  sds = rebuild_state_dicts(meta, npz)
  params = from_reference(system, sds["machine"], sds["additional"])

  @jax.jit
  def forward(params, x):
    base = system.run_base(params["base"], x, train=False, return_intermediates=True)
    add = system.run_additional(params["additional"], x, base, train=False,
                                return_intermediates=True)
    return base, add

  with jax.default_matmul_precision("highest"):
    base, add = jax.device_get(forward(params, x))
  ours = {**_branch_arrays(base, "m"), **_branch_arrays(add["out"], "a"),
          "m/x_hat": _nchw(base.x_hat), "fused/y_hat": _nchw(add["g_s_in"]),
          "a/x_hat": _nchw(add["x_hat"])}
  for key in sorted(k for k in npz.files if not k.startswith("param/") and k != "x"):
    if key not in ours:
      report.check(key, False, "no counterpart in our forward")
      continue
    report.close(key, ours[key], npz[key], rtol=1e-4)
  for p in ("m", "a"):
    k = 0
    while f"{p}/slice{k}/mu" in npz.files:  # the coded symbols round(y_k - mu_k), exactly
      width = ours[f"{p}/slice{k}/mu"].shape[1]
      sl = slice(k * width, (k + 1) * width)
      report.exact(f"{p}/slice{k}/symbols",
                   np.round(ours[f"{p}/y"][:, sl] - ours[f"{p}/slice{k}/mu"]),
                   np.round(npz[f"{p}/y"][:, sl] - npz[f"{p}/slice{k}/mu"]))
      k += 1
  pixels = x.shape[1] * x.shape[2]
  for layer, lik in (("machine", base.likelihoods), ("additional", add["out"].likelihoods)):
    report.close(f"bpp/{layer}", _bpp(lik, pixels), meta["bpp"][layer], rtol=1e-5)
  return report
