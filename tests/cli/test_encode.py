import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

from icmh_jax import cli, imageio
from icmh_jax.entropy import container
from tiny_model import TINY

MODEL = ["--random-init", "--system", "fr_icmh", "--config-json", json.dumps(TINY)]


@pytest.fixture
def photos(tmp_path):
  d = tmp_path / "in"
  d.mkdir()
  a = skimage.data.astronaut()[::2, ::2]
  imageio.write_image(d / "a.png", a[20:120, 80:200])
  imageio.write_image(d / "b.png", a[130:230, 10:130])
  (d / "broken.png").write_bytes(b"\x89PNG but not really")
  return d


def test_encode_folder_writes_files_and_exits_1_for_the_unreadable_one(photos, tmp_path, capsys):
  out = tmp_path / "out"
  assert cli.main(["encode", str(photos), "-o", str(out)] + MODEL) == 1
  captured = capsys.readouterr()
  assert sorted(p.name for p in out.iterdir()) == ["a.icmh", "b.icmh"]
  assert "broken.png" in captured.err and "cannot read image" in captured.err
  for name in ("a", "b"):
    header, layers = container.read_container((out / f"{name}.icmh").read_bytes(),
                                              need_layers=(0, 1))
    assert (header.system, header.height, header.width) == ("fr_icmh", 100, 120)
    assert f"{name}.icmh ({(out / f'{name}.icmh').stat().st_size} bytes)" in captured.out


def test_encode_single_image_to_named_file_exits_0(photos, tmp_path):
  target = tmp_path / "one.icmh"
  assert cli.main(["encode", str(photos / "a.png"), "-o", str(target)] + MODEL) == 0
  assert target.read_bytes()[:4] == b"ICMH"


def test_encode_missing_file_exits_1(tmp_path, capsys):
  assert cli.main(["encode", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o")] + MODEL) == 1
  assert "not found" in capsys.readouterr().err


def test_encode_needs_a_checkpoint_or_random_init(photos, tmp_path, capsys):
  assert cli.main(["encode", str(photos / "a.png"), "-o", str(tmp_path / "o")]) == 1
  assert "--checkpoint DIR and --random-init" in capsys.readouterr().err


@pytest.mark.slow  # moved out of the default suite (its 5-minute budget)
def test_encode_and_decode_with_a_checkpoint_match_the_random_init_it_holds(photos, tmp_path,
                                                                            capsys):
  from icmh_jax.models import registry
  from icmh_jax.params_io import save_params
  system, params = registry.load_system(None, name="fr_icmh", model_config=TINY, seed=3)
  ckpt = save_params(tmp_path / "ckpt", params, {"system": "fr_icmh", "model": TINY})
  target = tmp_path / "c.icmh"
  assert cli.main(["encode", str(photos / "a.png"), "-o", str(target), "--checkpoint", ckpt]) == 0
  assert target.read_bytes() == system.compress(params, imageio.read_image(photos / "a.png"))
  assert cli.main(["decode", str(target), "-o", str(tmp_path / "c.png"), "--checkpoint",
                   ckpt]) == 0
  expected = imageio.to_uint8(system.decompress(params, target.read_bytes()))
  np.testing.assert_array_equal(np.round(imageio.read_image(tmp_path / "c.png") * 255), expected)
  capsys.readouterr()
  assert cli.main(["encode", str(photos / "a.png"), "-o", str(target), "--checkpoint", ckpt,
                   "--system", "pr_icmh"]) == 1
  assert "holds system 'fr_icmh', not 'pr_icmh'" in capsys.readouterr().err


@pytest.fixture
def decoded_names(monkeypatch):
  """Names of the images `imageio.read_image` decoded (refusals must come before it)."""
  names, read = [], imageio.read_image

  def spy(path, *args, **kwargs):
    names.append(path.name)
    return read(path, *args, **kwargs)

  monkeypatch.setattr(imageio, "read_image", spy)
  return names


def test_encode_refuses_an_image_over_max_pixels_from_its_header_and_goes_on(
    photos, tmp_path, capsys, decoded_names):
  imageio.write_image(photos / "c.png", np.zeros((200, 300, 3), np.uint8))  # 384x256 padded
  out = tmp_path / "out"
  assert cli.main(["encode", str(photos), "-o", str(out), "--max-pixels", "20000"] + MODEL) == 1
  err = capsys.readouterr().err
  assert "c.png is 300x200, 384x256 = 98304 pixels padded, more than --max-pixels 20000" in err
  assert sorted(p.name for p in out.iterdir()) == ["a.icmh", "b.icmh"]  # 128x128 = 16384 each
  assert "c.png" not in decoded_names and "a.png" in decoded_names
  assert "2 of 4 images failed" in err  # broken.png and c.png


def test_encode_refuses_a_side_past_the_container_limit_before_decoding(tmp_path, capsys,
                                                                       decoded_names):
  Image.new("L", (65537, 1)).save(tmp_path / "wide.png")  # 8.4 Mpixel padded: under the default
  assert cli.main(["encode", str(tmp_path / "wide.png"), "-o", str(tmp_path / "o")] + MODEL) == 1
  assert "wide.png is 65537x1; an .icmh file holds sides up to 65536" in capsys.readouterr().err
  assert decoded_names == [] and list((tmp_path / "o").iterdir()) == []


def test_encode_goes_on_after_an_image_raises_any_exception(photos, tmp_path, capsys,
                                                           monkeypatch):
  read = imageio.read_image

  def exhausted(path, *args, **kwargs):
    if path.name == "a.png":
      raise MemoryError("cannot allocate 9 GiB")
    return read(path, *args, **kwargs)

  monkeypatch.setattr(imageio, "read_image", exhausted)
  out = tmp_path / "out"
  assert cli.main(["encode", str(photos / "a.png"), str(photos / "b.png"), "-o", str(out)]
                  + MODEL) == 1
  err = capsys.readouterr().err
  assert "a.png: MemoryError: cannot allocate 9 GiB" in err and "1 of 2 images failed" in err
  assert [p.name for p in out.iterdir()] == ["b.icmh"]


def test_encode_refuses_images_that_would_overwrite_each_other(photos, tmp_path, capsys):
  imageio.write_image(photos / "a.jpg", np.full((64, 64, 3), 99, np.uint8))
  out = tmp_path / "out"
  (out).mkdir()
  assert cli.main(["encode", str(photos / "a.png"), str(photos / "a.jpg"), str(photos / "b.png"),
                   "-o", str(out)] + MODEL) == 1
  err = capsys.readouterr().err
  assert f"{photos / 'a.png'} and {photos / 'a.jpg'} would all be written to {out / 'a.icmh'}" in err
  assert f"{photos / 'a.jpg'} and {photos / 'a.png'} would all be written" in err
  assert [p.name for p in out.iterdir()] == ["b.icmh"]


def test_encode_of_one_file_named_twice_writes_it_once(photos, tmp_path, capsys):
  out = tmp_path / "out"
  assert cli.main(["encode", str(photos / "a.png"), str(photos / "a.png"), "-o", str(out)]
                  + MODEL) == 0
  assert [p.name for p in out.iterdir()] == ["a.icmh"]
  assert capsys.readouterr().out.count("a.icmh") == 1


def test_encode_with_a_checkpoint_holding_nan_exits_1_naming_the_parameter(photos, tmp_path,
                                                                          capsys):
  import jax
  from icmh_jax.models import registry
  from icmh_jax.params_io import save_params
  _, params = registry.load_system(None, name="fr_icmh", model_config=TINY)
  params = jax.tree_util.tree_map(np.asarray, params)
  params["additional"]["g_a"]["0"]["conv1"]["bias"] = np.full_like(
      params["additional"]["g_a"]["0"]["conv1"]["bias"], np.nan)
  ckpt = save_params(tmp_path / "nan", params, {"system": "fr_icmh", "model": TINY})
  assert cli.main(["encode", str(photos / "a.png"), "-o", str(tmp_path / "o"), "--checkpoint",
                   ckpt]) == 1
  err = capsys.readouterr().err
  assert err.strip().splitlines() == [f"icmh encode: error: checkpoint {ckpt} holds NaN or Inf in 1 "
                                      "parameters (additional/g_a/0/conv1/bias); a diverged or "
                                      "damaged run cannot be used"]
