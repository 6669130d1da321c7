"""The bundled photo set: fixed split of real photos, Canny edge maps, written and read via TFDS."""

import numpy as np
import pytest

from icmh_jax.data import bundled
from icmh_jax.errors import ConfigError
from icmh_jax.sam import edges


def test_prepared_splits_read_back_the_photos_and_their_canny_edges(tmp_path):
  data_dir = bundled.prepare(str(tmp_path))
  val = bundled.load(data_dir, "validation")
  assert [val[i]["image_id"] for i in range(len(val))] == [
      f"{p}/{n}" for p, n in bundled.VALIDATION]
  chelsea = bundled.load_photo("skimage", "chelsea")
  rec = val[0]
  np.testing.assert_array_equal(rec["image"], chelsea)  # PNG is lossless
  np.testing.assert_array_equal(rec["edges"], edges.canny_edge_map(chelsea))
  assert 0.001 < rec["edges"].mean() < 0.5
  train = bundled.load(data_dir, "train")
  assert len(train) == len(bundled.TRAIN)
  assert not {r for r in bundled.TRAIN} & {r for r in bundled.VALIDATION}
  grey = train[[n for _, n in bundled.TRAIN].index("camera")]["image"]
  assert grey.shape[-1] == 3 and np.array_equal(grey[..., 0], grey[..., 2])


def test_unknown_mask_source_is_refused_not_substituted(tmp_path):
  with pytest.raises(ConfigError, match="mask source 'sam' is not available.*allowed: canny"):
    bundled.prepare(str(tmp_path), mask_source="sam")
