import io

import numpy as np
import pytest

from icmh_jax import cli
from icmh_jax.golden import icmh_ff


@pytest.mark.slow  # 30 s
def test_icmh_ff_matches_golden_vectors(reference_dir, monkeypatch):
  npz = reference_dir / "icmh_ff" / "icmh_ff_golden.npz"
  reports, check = [], icmh_ff.check
  monkeypatch.setattr(icmh_ff, "check", lambda *a: reports.append(check(*a)) or reports[-1])
  status = cli.main(["golden-check", "icmh_ff", str(npz)])
  buf = io.StringIO()
  reports[0].print(buf)
  out = buf.getvalue()
  assert status == 0, out
  lines = out.strip().splitlines()
  assert lines[-1].startswith("golden icmh_ff: PASS")
  # Every array of the set got a row (bar the input), plus symbols per slice and bpp per layer.
  n_arrays = sum(1 for k in np.load(npz).files if not k.startswith("param/") and k != "x")
  rows = [l for l in lines[1:-1] if l.split()[-1] in ("pass", "exact")]
  assert len(rows) == n_arrays + 5 + 3 + 2
  assert any(l.startswith("fused/y_hat ") for l in rows)


def test_golden_config_is_read_from_the_json():
  meta = {"config": {"machine": {"N": 48, "M": 320, "num_slices": 5, "max_support_slices": 5,
                                 "window_size": 8, "config": [2] * 6, "head_dim": [8] * 6},
                     "additional": {"N": 64, "num_slices": 4, "latent_channels": 256,
                                    "g_s_in_channels": 320}}}
  cfg = icmh_ff.model_config(meta)
  assert (cfg["N_machine"], cfg["N"], cfg["num_slices_a"], cfg["head_dims"]) == (48, 64, 4, (8,) * 6)
  meta["config"]["additional"]["g_s_in_channels"] = 256
  with pytest.raises(ValueError, match="g_s takes 256 channels"):
    icmh_ff.model_config(meta)
