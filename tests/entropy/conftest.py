"""Golden LIC-TCM material for the entropy tests: the npz, the JSON and the rebuilt
EntropyBottleneck weights (rule in /work/shared/reference/tcm/README.md, "Weights")."""

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
