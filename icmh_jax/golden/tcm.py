"""`icmh golden-check tcm`: the Flax LIC-TCM against a PyTorch golden set (tests/reference/tcm).

Rebuilds the reference weights from the set's JSON rule, converts them with the key table,
and compares: module unit tests, every stage teacher-forced (each stage fed the stored input,
each slice fed the stored previous slices), the full forward end to end, symbols and indexes
exactly (through the real range coder, and decoded back, x_hat included: the set omits
`cmp/x_hat` as equal to clip(fwd/x_hat, 0, 1), see `omitted_arrays`), bpp, and the train-mode
loss / rates / aux loss / gradients with the stored noise. Everything is read from the JSON
(N, M, slices, shapes), nothing is special-cased to one set. Runs at full float32 matmul precision.
"""

import zlib

import jax
import jax.numpy as jnp
import numpy as np

from icmh_jax.convert import tcm as convert_tcm
from icmh_jax.entropy import gaussian
from icmh_jax.golden.report import GoldenReport
from icmh_jax.golden.sets import load_set
from icmh_jax.golden.tcm_units import check_units
from icmh_jax.models import coding, registry
from icmh_jax.models.tcm import TCM

RTOL = 1e-4
LIK_RTOL = 1e-4  # likelihoods lie in [0, 1]: max-relative 1e-4 is an absolute 1e-4 at most
GRAD_RTOL = 1e-3


def rebuild_state_dict(meta: dict, npz) -> dict[str, np.ndarray]:
  """The golden set's reference state_dict from its weight rule (README "Weights")."""
  seed, sd = meta["weights"]["set_seed"], {}
  for k, info in meta["weights"]["keys"].items():
    if info["kind"] == "stored":
      sd[k] = npz["param/" + k]
    else:
      rng = np.random.default_rng(zlib.crc32(f"{seed}:{k}".encode()))
      z = rng.standard_normal(info["shape"]).astype(np.float32)
      sd[k] = z * np.float32(info["scale"]) + np.float32(info["offset"])
  return sd


def model_from_meta(meta: dict) -> TCM:
  """Our TCM for the set's reference constructor kwargs."""
  kw = meta["model"]["kwargs"]
  return TCM(N=kw["N"], M=kw["M"], num_slices=kw["num_slices"],
             max_support_slices=kw["max_support_slices"], depths=tuple(kw["config"]),
             head_dims=tuple(kw["head_dim"]))


def tcm_system(model: TCM):
  """The registry's `tcm` system whose machine codec is `model` (compress / decompress of a
  golden TCM go through the one public `.icmh` path)."""
  system = registry.get_system("tcm", dict(
      N_machine=model.N, M=model.M, num_slices_m=model.num_slices,
      slice_width=model.M // model.num_slices, max_support_slices=model.max_support_slices,
      depths=tuple(model.depths), head_dims=tuple(model.head_dims)))
  if system.base != model:
    raise ValueError(f"no registry config gives {model}")
  return system


def golden_params(npz_path, json_path):
  """(model, Flax params, npz, meta) of a golden set."""
  npz, meta = load_set(npz_path, json_path)
  model = model_from_meta(meta)
  x = nhwc(npz["fwd/x"])
  template = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros(x.shape))["params"]
  params = convert_tcm.from_reference(rebuild_state_dict(meta, npz), template)
  return model, jax.tree_util.tree_map(jnp.asarray, params), npz, meta


def nhwc(a):
  a = np.asarray(a)
  return np.transpose(a, (0, 2, 3, 1)) if a.ndim == 4 else a


def golden_y_hat(npz, num_slices: int):
  """The set's full y_hat (NHWC): its slices concatenated (the set does not store it whole)."""
  return np.concatenate([nhwc(npz[f"fwd/slice{k}/y_hat"]) for k in range(num_slices)], axis=-1)


def bpp(likelihoods: dict, num_pixels: int):
  """Σ over {y, z} of Σ log(lik) / (−ln 2 · B·H·W)."""
  return sum(jnp.sum(jnp.log(v)) for v in likelihoods.values()) / (-np.log(2) * num_pixels)


def check(npz_path, json_path, train: bool = True) -> GoldenReport:
  """Runs every comparison the set holds (the train-mode loss and gradients only with `train`:
  their compile is half the check's time); returns the report (printed by the CLI)."""
  report = GoldenReport("tcm")
  with jax.default_matmul_precision("highest"):
    model, params, npz, meta = golden_params(npz_path, json_path)
    check_units(report, npz, meta)
    _check_entropy_units(report, model, params, npz)
    _check_stages(report, model, params, npz)
    out = _check_forward(report, model, params, npz, meta)
    if "cmp/y_symbols" in npz.files:
      _check_symbols(report, model, params, npz, out)
    if train and "train" in meta and "train/noise_y" in npz.files:
      _check_train(report, model, params, npz, meta)
  return report


def _check_entropy_units(report, model, params, npz):
  pre = "unit/gaussian_conditional/"
  if pre + "inputs" in npz.files:
    x, s, m = (jnp.asarray(npz[pre + k]) for k in ("inputs", "scales", "means"))
    outputs = jnp.round(x - m) + m
    report.close(pre + "outputs", outputs, npz[pre + "outputs"], RTOL)
    report.close(pre + "likelihoods", gaussian.gaussian_likelihood(outputs, s, m),
                 npz[pre + "likelihoods"], LIK_RTOL)
    report.exact(pre + "indexes", gaussian.build_indexes(np.asarray(npz[pre + "scales"])),
                 npz[pre + "indexes"])
  pre = "unit/eb_likelihood/"
  if pre + "inputs" in npz.files:
    lik, lower, upper = _apply_part(model, params, lambda m, v: m.entropy_bottleneck.likelihood(v),
                                    jnp.asarray(npz[pre + "inputs"]))
    report.close(pre + "likelihood", lik, npz[pre + "likelihood"], LIK_RTOL)
    report.close(pre + "lower_logits", lower, npz[pre + "lower_logits"], RTOL)
    report.close(pre + "upper_logits", upper, npz[pre + "upper_logits"], RTOL)
    q = params["entropy_bottleneck"]["quantiles"]
    logits = _apply_part(model, params, lambda m, v: m.entropy_bottleneck.logits_cumulative(v), q)
    report.close(pre + "logits_at_quantiles", logits,
                 npz[pre + "logits_at_quantiles"], RTOL)
  if "param/gaussian_conditional.scale_table" in npz.files:
    report.exact("scale_table", gaussian.scale_table().view(np.int32),
                 npz["param/gaussian_conditional.scale_table"].astype(np.float32).view(np.int32))


def _apply_part(model, params, method, *args, **kw):
  """`model.apply` of one part, jitted: op by op, a transformer part dispatches (and compiles)
  thousands of tiny programs. `method` must close over any Python-int argument (a slice index)."""
  return jax.jit(lambda p, *a: model.apply({"params": p}, *a, method=method, **kw))(params, *args)


def _stages(report, model, params, name, x, npz):
  """Runs TCM submodule `name` on x, compares its stored stage outputs, returns its output."""
  out, state = _apply_part(model, params, lambda m, v: getattr(m, name)(v), jnp.asarray(x),
                           capture_intermediates=True, mutable=["intermediates"])
  inter = state["intermediates"][name]
  for key in sorted(k for k in npz.files if k.startswith(f"fwd/stage/{name}.")):
    idx = key.rsplit(".", 1)[1]
    report.close(key, inter[idx]["__call__"][0], nhwc(npz[key]), RTOL)
  return out


def _check_stages(report, model, params, npz):
  """Each stage fed the stored input (teacher forcing)."""
  tf = "tf/"
  y = _stages(report, model, params, "g_a", nhwc(npz["fwd/x"]), npz)
  report.close(tf + "y", y, nhwc(npz["fwd/y"]), RTOL)
  z = _stages(report, model, params, "h_a", nhwc(npz["fwd/y"]), npz)
  report.close(tf + "z", z, nhwc(npz["fwd/z"]), RTOL)
  med = params["entropy_bottleneck"]["quantiles"][:, 0, 1]
  z_gold = jnp.asarray(nhwc(npz["fwd/z"]))
  report.close(tf + "z_hat", jnp.round(z_gold - med) + med, nhwc(npz["fwd/z_hat"]), RTOL)
  z_hat = jnp.asarray(nhwc(npz["fwd/z_hat"]))
  z_lik = _apply_part(model, params, lambda m, v: m.entropy_bottleneck(v), z_hat)
  report.close(tf + "z_likelihoods", z_lik, nhwc(npz["fwd/z_likelihoods"]), LIK_RTOL)
  for side, key in (("h_mean_s", "fwd/latent_means"), ("h_scale_s", "fwd/latent_scales")):
    out = _stages(report, model, params, side, z_hat, npz)
    report.close(tf + key[4:], out, nhwc(npz[key]), RTOL)
  lm, ls = (jnp.asarray(nhwc(npz[k])) for k in ("fwd/latent_means", "fwd/latent_scales"))
  y_gold = jnp.asarray(nhwc(npz["fwd/y"]))
  prev, w = [], model.slice_width
  for k in range(model.num_slices):
    pre = f"fwd/slice{k}/"
    p = _apply_part(model, params, lambda m, *a: m.ch_arm.slice_params(k, *a), lm, ls,
                    tuple(prev))
    for name in ("mean_support", "scale_support", "mu", "scale"):
      report.close(tf + pre[4:] + name, p[name], nhwc(npz[pre + name]), RTOL)
    mu, scale = (jnp.asarray(nhwc(npz[pre + n])) for n in ("mu", "scale"))
    y_k = y_gold[..., k * w:(k + 1) * w]
    y_hat_pre = jnp.round(y_k - mu) + mu
    report.close(tf + pre[4:] + "y_hat_pre_lrp", y_hat_pre, nhwc(npz[pre + "y_hat_pre_lrp"]), RTOL)
    report.close(tf + pre[4:] + "likelihoods", gaussian.gaussian_likelihood(y_hat_pre, scale, mu),
                 nhwc(npz[pre + "likelihoods"]), LIK_RTOL)
    y_hat_k, lrp = _apply_part(model, params, lambda m, *a: m.ch_arm.slice_lrp(k, *a),
                               jnp.asarray(nhwc(npz[pre + "mean_support"])),
                               jnp.asarray(nhwc(npz[pre + "y_hat_pre_lrp"])))
    report.close(tf + pre[4:] + "lrp", lrp, nhwc(npz[pre + "lrp"]), RTOL)
    report.close(tf + pre[4:] + "y_hat", y_hat_k, nhwc(npz[pre + "y_hat"]), RTOL)
    prev.append(jnp.asarray(nhwc(npz[pre + "y_hat"])))
  x_hat = _stages(report, model, params, "g_s", jnp.concatenate(prev, axis=-1), npz)
  report.close(tf + "x_hat", x_hat, nhwc(npz["fwd/x_hat"]), RTOL)



def _check_forward(report, model, params, npz, meta):
  """The eval forward end to end (each slice sees our own previous slices)."""
  x = jnp.asarray(nhwc(npz["fwd/x"]))
  fwd = jax.jit(lambda p, v: model.apply({"params": p}, v, return_intermediates=True))
  out = fwd(params, x)
  e2e = "e2e/"
  for name in ("y", "z", "z_hat", "x_hat"):
    report.close(e2e + name, getattr(out, name), nhwc(npz["fwd/" + name]), RTOL)
  y_hat_ref = golden_y_hat(npz, model.num_slices)
  report.close(e2e + "y_hat", out.y_hat, y_hat_ref, RTOL)
  report.close(e2e + "z_likelihoods", out.likelihoods["z"], nhwc(npz["fwd/z_likelihoods"]),
               LIK_RTOL)
  for name in ("latent_means", "latent_scales"):
    report.close(e2e + name, out.intermediates[name], nhwc(npz["fwd/" + name]), RTOL)
  w = model.slice_width
  for k, rec in enumerate(out.intermediates["slices"]):
    pre = f"fwd/slice{k}/"
    for name in ("mean_support", "scale_support", "mu", "scale", "y_hat_pre_lrp", "lrp", "y_hat"):
      report.close(e2e + pre[4:] + name, rec[name], nhwc(npz[pre + name]), RTOL)
    report.close(e2e + pre[4:] + "likelihoods", out.likelihoods["y"][..., k * w:(k + 1) * w],
                 nhwc(npz[pre + "likelihoods"]), LIK_RTOL)
  b, h, w_, _ = x.shape
  report.close("bpp_estimated", bpp(out.likelihoods, b * h * w_),
               np.float64(meta["scalars"]["bpp_estimated"]), 1e-5)
  return out


def _check_symbols(report, model, params, npz, out):
  """Symbols and indexes of the real encoder exactly; the decoder gives back the forward's y_hat."""
  x = jnp.asarray(nhwc(npz["fwd/x"]))
  y = coding.call_method(model, params, "analysis", x)
  streams, shape, sym = coding.compress_y(model, params, y, return_symbols=True)
  y_hat = coding.decompress_y(model, params, streams, shape)
  report.exact("cmp/z_symbols", sym["z_symbols"], nhwc(npz["cmp/z_symbols"]))
  report.exact("cmp/y_symbols", sym["y_symbols"], nhwc(npz["cmp/y_symbols"]))
  report.exact("cmp/y_indexes", sym["y_indexes"], nhwc(npz["cmp/y_indexes"]))
  report.close("dec/y_hat", y_hat, golden_y_hat(npz, model.num_slices), RTOL)
  report.check("dec/y_hat_eq_forward", bool(np.array_equal(np.asarray(y_hat),
                                                            np.asarray(out.y_hat))),
               "decompressed y_hat equals our eval forward's y_hat bit for bit")
  x_hat = np.clip(np.asarray(coding.call_method(model, params, "synthesis", y_hat)), 0, 1)
  if "cmp/x_hat" in npz or not npz.omitted("cmp/x_hat"):
    report.close("cmp/x_hat", x_hat, nhwc(npz["cmp/x_hat"]), RTOL)
  else:  # the set's own rule: "decompress() x_hat equals np.clip(fwd/x_hat, 0, 1) bit-exactly"
    report.close("cmp/x_hat", x_hat, np.clip(nhwc(npz["fwd/x_hat"]), 0, 1), RTOL,
                 "omitted by the set: compared with clip(fwd/x_hat, 0, 1) as omitted_arrays says")


def _check_train(report, model, params, npz, meta):
  """Train-mode loss, rates, aux loss and gradients with the stored noise."""
  tr = meta["train"]
  x = jnp.asarray(nhwc(npz["fwd/x"]))
  x_train = jnp.concatenate([x, x[:, :, ::-1]], axis=0)
  noise = {"y": jnp.asarray(nhwc(npz["train/noise_y"])),
           "z": jnp.asarray(nhwc(npz["train/noise_z"]))}
  lam = float(tr["lambda"])
  b, h, w, _ = x_train.shape

  def loss_fn(p):
    out = model.apply({"params": p}, x_train, train=True, noise=noise)
    rate = bpp(out.likelihoods, b * h * w)
    mse = jnp.mean(jnp.square(out.x_hat - x_train))
    return lam * 255.0 ** 2 * mse + rate, (rate, mse, out.likelihoods["z"])

  def aux_fn(p):
    return model.apply({"params": p}, method=lambda m: m.entropy_bottleneck.aux_loss())

  (loss, (rate, mse, z_lik)), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
  aux, aux_grads = jax.jit(jax.value_and_grad(aux_fn))(params)
  report.close("train/loss", loss, np.float64(tr["loss"]), 1e-5)
  report.close("train/bpp_loss", rate, np.float64(tr["bpp_loss"]), 1e-5)
  report.close("train/mse_loss", mse, np.float64(tr["mse_loss"]), RTOL)
  report.close("train/aux_loss", aux, np.float64(tr["aux_loss"]), RTOL)
  report.close("train/z_likelihoods", z_lik, nhwc(npz["train/z_likelihoods"]), LIK_RTOL)
  g_ref = convert_tcm.to_reference(grads)
  norms = {k: float(np.linalg.norm(v.astype(np.float64))) for k, v in g_ref.items()}
  report.close("train/total_grad_norm_l2", np.sqrt(sum(n * n for n in norms.values())),
               np.float64(tr["total_grad_norm_l2"]), GRAD_RTOL)
  worst, n_bad, missing = ("", 0.0), 0, []
  for k, ref in tr["grad_norms"].items():
    if k not in norms:
      missing.append(k)
      continue
    err = abs(norms[k] - ref) / ref if ref > 0 else norms[k]
    n_bad += err > GRAD_RTOL
    worst = max(worst, (k, err), key=lambda t: t[1])
  report.check("train/grad_norms", not n_bad and not missing,
               f"{len(tr['grad_norms'])} params, {n_bad} beyond rel {GRAD_RTOL}, "
               f"{len(missing)} missing; worst {worst[0]} {worst[1]:.2e}")
  for key in sorted(k for k in npz.files if k.startswith("train/grad/")):
    name = key[len("train/grad/"):]
    report.close(key, g_ref[name], npz[key], GRAD_RTOL)
  aux_ref = convert_tcm.to_reference(aux_grads)
  for key in sorted(k for k in npz.files if k.startswith("train/aux_grad/")):
    report.close(key, aux_ref[key[len("train/aux_grad/"):]], npz[key], GRAD_RTOL)
