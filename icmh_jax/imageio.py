"""Reading and writing images for the codec: RGB float32 [H, W, 3] in [0, 1].

`read_image` accepts what Pillow reads and handles every non-RGB mode explicitly: grayscale,
bilevel, palette, CMYK / YCbCr / LAB are converted to RGB and alpha is dropped, each with a notice
on stderr; 16-bit images are scaled by 1/65535 (16-bit RGB PNGs are read at full depth through
OpenCV); float images are refused. Images above Pillow's decompression-bomb limit
(`PIL.Image.MAX_IMAGE_PIXELS`), or above the caller's `max_pixels`, are refused before decoding;
`image_size` reads the size from the file's header alone. `write_image` never leaves a
half-written file: it writes a temporary file in the target's folder and renames it.
"""

import contextlib
import os
import pathlib
import sys
import tempfile
import warnings

import numpy as np
from PIL import Image, ImageOps

from icmh_jax.errors import IcmhError, ImageError

_CONVERTED = {"L": "grayscale", "1": "bilevel", "P": "palette", "CMYK": "CMYK", "YCbCr": "YCbCr",
              "LAB": "LAB", "HSV": "HSV", "LA": "grayscale+alpha", "RGBA": "RGBA", "RGBX": "RGBX",
              "RGBa": "RGBa", "PA": "palette+alpha", "La": "grayscale+alpha"}
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF",
                 ".tiff": "TIFF", ".ppm": "PPM", ".webp": "WEBP"}


def _notice(path, message: str) -> None:
  print(f"icmh: note: {path}: {message}", file=sys.stderr)


@contextlib.contextmanager
def _pillow_limit(max_pixels):
  """Pillow's decompression-bomb limit raised to `max_pixels` (None: left as it is) meanwhile."""
  saved = Image.MAX_IMAGE_PIXELS
  if max_pixels is not None and saved is not None:
    Image.MAX_IMAGE_PIXELS = max(saved, max_pixels)
  try:
    yield
  finally:
    Image.MAX_IMAGE_PIXELS = saved


def image_size(path) -> tuple[int, int]:
  """(height, width) as `read_image` will return them (EXIF rotation applied), read from the
  file's header without decoding a pixel, however large the image claims to be.

  Raises:
    ImageError: missing or unreadable file, not an image.
  """
  try:
    with _pillow_limit(2 ** 62), Image.open(path) as im:
      w, h = im.size
      orientation = im.getexif().get(0x0112, 1)  # EXIF Orientation
  except FileNotFoundError as e:
    raise ImageError(f"cannot read image {path}: file not found") from e
  except (OSError, ValueError, SyntaxError) as e:
    raise ImageError(f"cannot read image {path}: {e}") from e
  return (w, h) if orientation in (5, 6, 7, 8) else (h, w)  # 5..8 turn the image by 90 degrees


def _open(path, max_pixels=None) -> Image.Image:
  limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
  try:
    with warnings.catch_warnings(), _pillow_limit(max_pixels):
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      im = Image.open(path)
      if max_pixels is not None and im.width * im.height > max_pixels:
        raise Image.DecompressionBombError(f"{im.width}x{im.height} pixels")
      im.load()
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    what = (f"Pillow's decompression-bomb limit of {limit} (PIL.Image.MAX_IMAGE_PIXELS)"
            if max_pixels is None else f"the limit of {limit}")
    raise ImageError(f"cannot read image {path}: more pixels than {what}; {e}") from e
  except FileNotFoundError as e:
    raise ImageError(f"cannot read image {path}: file not found") from e
  except (OSError, ValueError, SyntaxError) as e:
    raise ImageError(f"cannot read image {path}: {e}") from e
  return im


def _read_png16(path) -> np.ndarray | None:
  """Full-depth RGB of a 16-bit PNG (Pillow would truncate it to 8 bits), else None."""
  with open(path, "rb") as f:
    head = f.read(26)
  # IHDR: bit depth at byte 24, colour type at byte 25 (2 = RGB, 6 = RGBA).
  if head[:8] != b"\x89PNG\r\n\x1a\n" or head[24] != 16 or head[25] not in (2, 6):
    return None
  import cv2
  a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
  if a is None or a.dtype != np.uint16:
    return None
  return a[..., 2::-1].astype(np.float32) / np.float32(65535)


def read_image(path, max_pixels: int | None = None) -> np.ndarray:
  """Reads an image file as RGB.

  Args:
    path: file path.
    max_pixels: refuse images with more pixels, before decoding (None: Pillow's limit,
      `PIL.Image.MAX_IMAGE_PIXELS`); a larger value also lifts Pillow's limit for this read.

  Returns:
    float32 [H, W, 3] in [0, 1].

  Raises:
    ImageError: unreadable, not an image, too large (decompression bomb) or an unsupported mode.
  """
  path = pathlib.Path(path)
  im = _open(path, max_pixels)
  if getattr(im, "n_frames", 1) > 1:
    _notice(path, f"{im.n_frames} frames; using the first")
  fmt, mode = im.format, im.mode
  im = ImageOps.exif_transpose(im)
  if mode in ("RGB", "RGBA") and fmt == "PNG":
    a = _read_png16(path)
    if a is not None:
      _notice(path, "16-bit RGB PNG, scaled by 1/65535" + ("; alpha dropped" if a.shape[-1] == 4
                                                           else ""))
      return np.ascontiguousarray(a[..., :3])
  if mode in _SIXTEEN_BIT:
    a = np.asarray(im)
    if a.min() < 0 or a.max() > 65535:
      raise ImageError(f"cannot read image {path}: integer mode {mode} with values outside "
                       f"[0, 65535] (range {a.min()}..{a.max()}); convert it to 8 or 16 bit first")
    _notice(path, f"16-bit grayscale ({mode}), scaled by 1/65535 and repeated to RGB")
    g = a.astype(np.float32) / np.float32(65535)
    return np.repeat(g[..., None], 3, axis=-1)
  if mode != "RGB":
    if mode not in _CONVERTED:
      raise ImageError(f"cannot read image {path}: unsupported mode {mode!r}; supported: RGB, "
                       f"{', '.join(sorted(_CONVERTED))}, 16-bit grayscale")
    alpha = "A" in mode or "a" in mode or (mode == "P" and "transparency" in im.info)
    _notice(path, f"{_CONVERTED[mode]} image converted to RGB" + ("; alpha dropped" if alpha
                                                                  else ""))
    im = im.convert("RGBA" if mode == "P" and alpha else "RGB").convert("RGB")
  return np.asarray(im, dtype=np.float32) / np.float32(255)


def to_uint8(array) -> np.ndarray:
  """float [H, W, 3] (or [H, W]) in [0, 1] -> uint8, rounding; uint8 passes through."""
  a = np.asarray(array)
  if a.dtype == np.uint8:
    return a
  if not np.issubdtype(a.dtype, np.floating):
    raise ImageError(f"image array must be float in [0, 1] or uint8, got dtype {a.dtype}")
  if not np.all(np.isfinite(a)):
    raise ImageError("image array has non-finite values")
  return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_image(path, array) -> None:
  """Writes an image atomically (temporary file in the same folder, then `os.replace`).

  Args:
    path: target file; the format follows its extension (`WRITE_FORMATS`).
    array: float [H, W, 3] / [H, W] / [H, W, 1] in [0, 1] (clipped, rounded to 8 bit) or uint8.

  Raises:
    ImageError: unknown extension, bad shape or dtype, or the file cannot be written.
  """
  path = pathlib.Path(path)
  fmt = WRITE_FORMATS.get(path.suffix.lower())
  if fmt is None:
    raise ImageError(f"cannot write {path}: unknown image extension {path.suffix!r}; "
                     f"allowed: {', '.join(sorted(WRITE_FORMATS))}")
  a = to_uint8(array)
  if a.ndim == 3 and a.shape[-1] == 1:
    a = a[..., 0]
  if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3) or 0 in a.shape:
    raise ImageError(f"cannot write {path}: image shape {a.shape}; expected [H, W, 3] or [H, W]")
  _atomic_write(path, lambda f: Image.fromarray(a).save(f, format=fmt), ImageError)


def write_bytes(path, data: bytes) -> None:
  """Writes bytes atomically (same temporary-file + rename scheme as `write_image`)."""
  _atomic_write(pathlib.Path(path), lambda f: f.write(data), IcmhError)


def _file_mode() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return 0o666 & ~mask


_FILE_MODE = _file_mode()  # what open() would give: mkstemp's files are private (0600)


def _atomic_write(path: pathlib.Path, write, error: type[IcmhError]) -> None:
  """`write(binary file)` into a temporary file beside `path`, then renames it to `path`; an
  OSError becomes `error`, and no temporary file is left behind."""
  folder = path.parent if str(path.parent) else pathlib.Path(".")
  tmp = None
  try:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    with os.fdopen(fd, "wb") as f:
      write(f)
    os.chmod(tmp, _FILE_MODE)
    os.replace(tmp, path)
  except BaseException as e:
    if tmp is not None and os.path.exists(tmp):
      os.unlink(tmp)
    if isinstance(e, OSError):
      raise error(f"cannot write {path}: {e}") from e
    raise
