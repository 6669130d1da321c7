"""`icmh bench codec`'s count of escaped latents, against the symbols the range coder escapes."""

import jax
import numpy as np

from icmh_jax.benchmarks import codec
from icmh_jax.benchmarks.torch_reference import astronaut
from icmh_jax.entropy import coder
from icmh_jax.models import registry

TINY = dict(N_machine=32, M=128, num_slices_m=2, num_slices_a=1, slice_width=64, depths=(1,) * 6,
            head_dims=(16,) * 6, inter_dim=32, cc_hidden=(32, 32), z_channels=32)


def test_y_escapes_counts_what_the_coder_codes_as_escapes(monkeypatch):
  system = registry.get_system("tcm", TINY)
  params = system.init(jax.random.key(0), (1, 128, 128, 3))["base"]
  # latents far larger than the hyperprior predicts: many escapes
  params = dict(params, g_a=jax.tree.map(lambda p: 3 * p, params["g_a"]))
  escaped = []
  encode = coder.SymbolEncoder.encode

  def spy(self, symbols, indexes):
    v = np.asarray(symbols).reshape(-1)
    idx = np.asarray(indexes).reshape(-1)
    lo = self.tables.offsets[idx]
    if self.tables.num_tables == 64:  # the Gaussian (y) tables
      escaped.append(int(np.sum((v < lo) | (v > lo + self.tables.lengths[idx] - 2))))
    return encode(self, symbols, indexes)

  monkeypatch.setattr(coder.SymbolEncoder, "encode", spy)
  image = astronaut(128, 128)
  count = codec.y_escapes(system, params, image)
  assert count == sum(escaped) > 0
