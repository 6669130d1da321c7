"""The grain pipeline: deterministic, resumable, aligned crops, per-process shards of one stream."""

import itertools

import numpy as np
import pytest

from icmh_jax.data import pipeline


class Source:
  """Random photos of assorted sizes whose edge map is a function of the pixels (to test alignment)."""

  def __init__(self, n=7, sizes=((40, 70), (96, 50), (33, 33), (120, 80))):
    rng = np.random.default_rng(0)
    self.records = []
    for i in range(n):
      h, w = sizes[i % len(sizes)]
      image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
      self.records.append(dict(image=image, edges=image[..., 0] > 128, image_id=str(i)))

  def __len__(self):
    return len(self.records)

  def __getitem__(self, i):
    return self.records[i]


def _take(ds_or_it, n):
  it = ds_or_it if hasattr(ds_or_it, "__next__") else iter(ds_or_it)
  return [next(it) for _ in range(n)]


def _same(a, b):
  return all(np.array_equal(x["image"], y["image"]) and np.array_equal(x["edges"], y["edges"])
             for x, y in zip(a, b))


def test_same_seed_gives_same_batches_and_other_seed_differs():
  src = Source()
  make = lambda seed: pipeline.train_dataset(src, crop=32, global_batch=3, seed=seed)
  a, b, c = _take(make(1), 6), _take(make(1), 6), _take(make(2), 6)
  assert _same(a, b)
  assert not _same(a, c)
  assert a[0]["image"].shape == (3, 32, 32, 3) and a[0]["image"].dtype == np.uint8


def test_resume_from_iterator_state_repeats_the_next_batches():
  src = Source()
  it = iter(pipeline.train_dataset(src, crop=32, global_batch=2, seed=5))
  _take(it, 5)  # past the first epoch (7 records) so the state is not trivial
  state = it.get_state()
  expected = _take(it, 4)
  fresh = iter(pipeline.train_dataset(src, crop=32, global_batch=2, seed=5))
  fresh.set_state(state)
  assert _same(_take(fresh, 4), expected)


def test_crops_and_flips_keep_image_and_edges_aligned_even_when_padding():
  src = Source()
  for batch in _take(pipeline.train_dataset(src, crop=64, global_batch=4, seed=0), 8):
    assert batch["image"].shape == (4, 64, 64, 3)
    np.testing.assert_array_equal(batch["edges"], (batch["image"][..., 0] > 128).astype(np.uint8))


def test_flip_and_crop_match_numpy_slicing():
  image = np.arange(10 * 12 * 3, dtype=np.uint16).reshape(10, 12, 3)
  rec = dict(image=image, edges=image[..., 0] % 5 == 0)
  rng_state = np.random.default_rng(3)
  out = pipeline.crop_and_flip(rec, np.random.default_rng(3), 4)
  top, left, flip = rng_state.integers(0, 7), rng_state.integers(0, 9), rng_state.integers(0, 2)
  want = image[top:top + 4, left:left + 4]
  want = want[:, ::-1] if flip else want
  np.testing.assert_array_equal(out["image"], want)


def test_processes_together_hold_the_single_process_global_batch():
  src = Source()
  whole = _take(pipeline.train_dataset(src, crop=16, global_batch=4, seed=9), 5)
  parts = [_take(pipeline.train_dataset(src, crop=16, global_batch=4, seed=9, process_index=p,
                                        process_count=2), 5) for p in range(2)]
  for step, batch in enumerate(whole):
    joined = np.concatenate([parts[0][step]["image"], parts[1][step]["image"]])
    np.testing.assert_array_equal(joined, batch["image"])
  with pytest.raises(ValueError, match="not divisible by 3 processes"):
    pipeline.train_dataset(src, crop=16, global_batch=4, seed=9, process_index=0, process_count=3)


def test_eval_batches_are_center_crops_in_record_order():
  src = Source(n=3)
  batches = _take(pipeline.eval_dataset(src, crop=16, global_batch=2), 3)
  flat = list(itertools.chain.from_iterable(b["image"] for b in batches))
  for k, img in enumerate(flat):
    np.testing.assert_array_equal(img, pipeline.center_crop(src[k % 3], 16)["image"])
  rec = src[2]  # 33 x 33: center crop of 16 starts at 8
  np.testing.assert_array_equal(pipeline.center_crop(rec, 16)["image"], rec["image"][8:24, 8:24])


def test_batches_are_prepared_by_one_background_thread():
  """Grain's default read options start 16 threads; beside the train step under one malloc arena
  they halved its speed (pipeline's docstring)."""
  import threading
  before = threading.active_count()
  it = iter(pipeline.train_dataset(Source(), crop=16, global_batch=2, seed=0))
  _take(it, 5)
  assert threading.active_count() - before <= 2
