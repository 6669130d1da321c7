import json

import numpy as np
import pytest
import skimage.data

from icmh_jax import cli, imageio
from icmh_jax.entropy import container

TINY = dict(N_m=32, N=32, M=128, num_slices_m=2, num_slices_a=1, depths=[1] * 6,
            head_dims=[16] * 6, inter_dim=32, cc_hidden=[32, 32], z_channels=32)
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
