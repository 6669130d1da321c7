import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

from icmh_jax import cli, imageio
from icmh_jax.errors import BitstreamError
from icmh_jax.models import registry
from tiny_model import TINY

MODEL = ["--random-init", "--config-json", json.dumps(TINY)]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
  d = tmp_path_factory.mktemp("dec")
  imageio.write_image(d / "a.png", skimage.data.astronaut()[::2, ::2][20:120, 80:200])
  assert cli.main(["encode", str(d / "a.png"), "-o", str(d / "a.icmh"), "--system",
                   "fr_icmh"] + MODEL) == 0
  return d


@pytest.mark.parametrize("layer", ["machine", "human"])
def test_decode_writes_the_library_reconstruction(encoded, layer, capsys):
  out = encoded / f"{layer}.png"
  assert cli.main(["decode", str(encoded / "a.icmh"), "-o", str(out), "--layer", layer]
                  + MODEL) == 0
  assert f"({layer} layer) -> {out} (120x100)" in capsys.readouterr().out
  system, params = registry.load_system(None, name="fr_icmh", model_config=TINY)
  expected = system.decompress(params, (encoded / "a.icmh").read_bytes(), layer=layer)
  np.testing.assert_array_equal(np.asarray(Image.open(out)), imageio.to_uint8(expected))


def test_decode_missing_file_exits_1(tmp_path, capsys):
  assert cli.main(["decode", str(tmp_path / "x.icmh"), "-o", str(tmp_path / "x.png")]
                  + MODEL) == 1
  assert "cannot read" in capsys.readouterr().err
  assert not (tmp_path / "x.png").exists()


def test_decode_human_layer_of_a_cut_file_exits_1(encoded, capsys):
  data = (encoded / "a.icmh").read_bytes()
  info = json.loads(_info_json(encoded / "a.icmh", capsys))
  cut = encoded / "cut.icmh"
  cut.write_bytes(data[:len(data) - info["layers"]["human"]["bytes"] - 9])
  assert cli.main(["decode", str(cut), "-o", str(encoded / "m.png"), "--layer", "machine"]
                  + MODEL) == 0
  capsys.readouterr()
  assert cli.main(["decode", str(cut), "-o", str(encoded / "h.png")] + MODEL) == 1
  assert "human layer missing" in capsys.readouterr().err
  assert not (encoded / "h.png").exists()


def test_decode_with_another_model_config_exits_1(encoded, capsys):
  other = json.dumps({**TINY, "num_slices_a": 2})
  argv = ["decode", str(encoded / "a.icmh"), "-o", str(encoded / "o.png"), "--random-init",
          "--config-json", other]
  assert cli.main(argv) == 1
  assert "another 'fr_icmh' config" in capsys.readouterr().err


def _info_json(path, capsys):
  capsys.readouterr()
  assert cli.main(["info", str(path), "--json"]) == 0
  return capsys.readouterr().out


def test_decode_refuses_a_header_past_max_pixels_before_loading_any_model(tmp_path, capsys):
  from icmh_jax.entropy import container
  big = container.write_container(container.Header("fr_icmh", bytes(16), 20000, 30000), {0: b""})
  (tmp_path / "big.icmh").write_bytes(big)
  # the checkpoint does not exist: the size is refused before the model would be loaded
  assert cli.main(["decode", str(tmp_path / "big.icmh"), "-o", str(tmp_path / "big.png"),
                   "--checkpoint", str(tmp_path / "no_such_ckpt")]) == 1
  err = capsys.readouterr().err
  assert "claims a 30000x20000 image, 30000x20000 = 600000000 pixels padded, more than " \
         "--max-pixels 67108864" in err
  assert not (tmp_path / "big.png").exists()


def test_decode_max_pixels_is_the_padded_size_of_the_file(encoded, capsys):
  out = encoded / "limit.png"
  # a.icmh is 120x100, padded to 128x128 = 16384 pixels
  assert cli.main(["decode", str(encoded / "a.icmh"), "-o", str(out), "--max-pixels", "16383"]
                  + MODEL) == 1
  assert "128x128 = 16384 pixels padded, more than --max-pixels 16383" in capsys.readouterr().err
  assert not out.exists()
  assert cli.main(["decode", str(encoded / "a.icmh"), "-o", str(out), "--max-pixels", "16384"]
                  + MODEL) == 0
