import os

import numpy as np
import pytest
import skimage.data
from PIL import Image

from icmh_jax import imageio
from icmh_jax.errors import ImageError


@pytest.fixture(scope="module")
def photo():
  return skimage.data.astronaut()[::8, ::8]  # 64x64x3 uint8


def test_rgb_png_round_trip_is_exact(tmp_path, photo):
  path = tmp_path / "a.png"
  imageio.write_image(path, photo.astype(np.float32) / 255)
  back = imageio.read_image(path)
  assert back.dtype == np.float32
  np.testing.assert_array_equal(np.round(back * 255).astype(np.uint8), photo)


def test_grayscale_is_repeated_to_rgb_with_a_notice(tmp_path, photo, capsys):
  g = photo[..., 0]
  Image.fromarray(g).save(tmp_path / "g.png")
  back = imageio.read_image(tmp_path / "g.png")
  assert back.shape == (64, 64, 3)
  for c in range(3):
    np.testing.assert_array_equal(back[..., c], g / np.float32(255))
  assert "grayscale" in capsys.readouterr().err


def test_rgba_drops_alpha_with_a_notice(tmp_path, photo, capsys):
  alpha = np.full(photo.shape[:2] + (1,), 7, np.uint8)
  Image.fromarray(np.concatenate([photo, alpha], -1)).save(tmp_path / "a.png")
  back = imageio.read_image(tmp_path / "a.png")
  np.testing.assert_array_equal(np.round(back * 255).astype(np.uint8), photo)
  assert "alpha dropped" in capsys.readouterr().err


def test_palette_image_converts_to_its_palette_colours(tmp_path, capsys):
  im = Image.new("P", (4, 2))
  im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
  im.putdata([0, 1, 0, 1, 1, 1, 0, 0])
  im.save(tmp_path / "p.png")
  back = imageio.read_image(tmp_path / "p.png")
  np.testing.assert_array_equal(back[0, 0], [1, 0, 0])
  np.testing.assert_array_equal(back[0, 1], [0, 0, 1])
  assert "palette" in capsys.readouterr().err


def test_sixteen_bit_grayscale_is_scaled_by_65535(tmp_path, capsys):
  a = np.array([[0, 65535], [32768, 1000]], np.uint16)
  Image.fromarray(a).save(tmp_path / "g16.png")
  back = imageio.read_image(tmp_path / "g16.png")
  np.testing.assert_allclose(back[..., 1], a / 65535.0, rtol=1e-6)
  assert "16-bit" in capsys.readouterr().err


def test_sixteen_bit_rgb_png_keeps_full_depth(tmp_path, capsys):
  import cv2
  rgb = (np.arange(2 * 3 * 3).reshape(2, 3, 3) * 7001 % 65536).astype(np.uint16)
  cv2.imwrite(str(tmp_path / "c16.png"), rgb[..., ::-1])
  back = imageio.read_image(tmp_path / "c16.png")
  np.testing.assert_allclose(back, rgb / 65535.0, rtol=1e-6)
  assert "16-bit RGB" in capsys.readouterr().err


def test_float_image_is_refused_naming_the_mode(tmp_path):
  Image.fromarray(np.ones((3, 3), np.float32)).save(tmp_path / "f.tif")
  with pytest.raises(ImageError, match="unsupported mode 'F'"):
    imageio.read_image(tmp_path / "f.tif")


def test_decompression_bomb_is_refused_stating_the_limit(tmp_path, monkeypatch, photo):
  Image.fromarray(photo).save(tmp_path / "big.png")
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
  with pytest.raises(ImageError, match="decompression-bomb limit of 1000"):
    imageio.read_image(tmp_path / "big.png")


def test_unreadable_and_missing_files_raise_image_error(tmp_path):
  (tmp_path / "junk.png").write_bytes(b"not an image at all")
  with pytest.raises(ImageError, match="junk.png"):
    imageio.read_image(tmp_path / "junk.png")
  with pytest.raises(ImageError, match="not found"):
    imageio.read_image(tmp_path / "missing.png")


def test_failed_write_leaves_existing_file_untouched(tmp_path, photo, monkeypatch):
  path = tmp_path / "keep.png"
  imageio.write_image(path, photo)
  before = path.read_bytes()

  def broken_save(self, fp, format=None, **kw):
    fp.write(b"partial")
    raise OSError("disk full")

  monkeypatch.setattr(Image.Image, "save", broken_save)
  with pytest.raises(ImageError, match="disk full"):
    imageio.write_image(path, np.zeros((5, 5, 3), np.float32))
  assert path.read_bytes() == before
  assert os.listdir(tmp_path) == ["keep.png"]


def test_write_rounds_and_clips_floats(tmp_path):
  a = np.array([[[-0.2, 0.5, 1.3], [0.002, 0.998, 0.501]]], np.float32)
  imageio.write_image(tmp_path / "r.png", a)
  back = np.asarray(Image.open(tmp_path / "r.png"))
  np.testing.assert_array_equal(back, [[[0, 128, 255], [1, 254, 128]]])


def test_write_unknown_extension_is_refused(tmp_path):
  with pytest.raises(ImageError, match="unknown image extension '.xyz'"):
    imageio.write_image(tmp_path / "a.xyz", np.zeros((2, 2, 3), np.float32))


def test_written_files_get_the_permissions_open_would_give(tmp_path, photo):
  (tmp_path / "plain").write_bytes(b"")  # the umask's mode, as any other tool would write
  want = os.stat(tmp_path / "plain").st_mode & 0o777
  imageio.write_image(tmp_path / "a.png", photo)
  imageio.write_bytes(tmp_path / "a.icmh", b"ICMH")
  for name in ("a.png", "a.icmh"):
    assert os.stat(tmp_path / name).st_mode & 0o777 == want, name
  assert (tmp_path / "a.icmh").read_bytes() == b"ICMH"
