"""Golden LIC-TCM material for the entropy tests: the npz, the JSON and the rebuilt
EntropyBottleneck weights (rule in tests/reference/tcm/README.md, "Weights")."""

import json
import zlib

import numpy as np
import pytest

_EB_PARAMS = ("matrices", "biases", "factors", "quantiles")


@pytest.fixture(scope="session")
def tcm_golden(reference_dir):
  """(npz, meta) of the primary LIC-TCM golden set."""
  npz = np.load(reference_dir / "tcm" / "tcm_golden.npz")
  with open(reference_dir / "tcm" / "tcm_golden.json") as f:
    meta = json.load(f)
  return npz, meta


def _rebuild(meta, npz, key):
  info = meta["weights"]["keys"][key]
  if info["kind"] == "stored":
    return npz["param/" + key]
  seed = zlib.crc32(f"{meta['weights']['set_seed']}:{key}".encode())
  z = np.random.default_rng(seed).standard_normal(info["shape"]).astype(np.float32)
  return z * np.float32(info["scale"]) + np.float32(info["offset"])


@pytest.fixture(scope="session")
def golden_eb_params(tcm_golden):
  """The golden EntropyBottleneck as FactorizedPrior params: `matrices.0` -> `matrices_0`."""
  npz, meta = tcm_golden
  params = {}
  for key in meta["weights"]["keys"]:
    parts = key.split(".")
    if parts[0] == "entropy_bottleneck" and parts[1] in _EB_PARAMS:
      params["_".join(parts[1:])] = _rebuild(meta, npz, key)
  return params


@pytest.fixture(scope="session")
def prior_params():
  """A 12-channel FactorizedPrior (numpy params) with varied, well-conditioned densities:
  compressai-style init plus noise, quantiles near each density's tails."""
  rng = np.random.default_rng(1234)
  c, f = 12, (1, 3, 3, 3, 3, 1)
  scale = 4.0 ** (1 / 5)
  params = {}
  for k in range(5):
    init = np.log(np.expm1(1 / scale / f[k + 1]))
    params[f"matrices_{k}"] = (init + rng.normal(0, 0.3, (c, f[k + 1], f[k]))).astype(np.float32)
    params[f"biases_{k}"] = rng.uniform(-0.5, 0.5, (c, f[k + 1], 1)).astype(np.float32)
    if k < 4:
      params[f"factors_{k}"] = rng.normal(0, 0.5, (c, f[k + 1], 1)).astype(np.float32)
  med = rng.normal(0, 0.3, c)
  half = rng.uniform(2, 40, c)
  params["quantiles"] = np.stack([med - half, med, med + 1.2 * half], -1)[:, None, :].astype(
      np.float32)
  return params
