import json

import pytest

from icmh_jax import cli
from icmh_jax.entropy import container


def _file(tmp_path, layers, h=100, w=120, system="fr_icmh"):
  header = container.Header(system, bytes(16), h, w, (14, 14, 4, 4))
  path = tmp_path / "f.icmh"
  path.write_bytes(container.write_container(header, layers))
  return path


def test_info_json_reports_bytes_and_bpp_per_layer(tmp_path, capsys):
  path = _file(tmp_path, {0: b"m" * 300, 1: b"h" * 150})
  assert cli.main(["info", str(path), "--json"]) == 0
  doc = json.loads(capsys.readouterr().out)
  assert (doc["system"], doc["height"], doc["width"]) == ("fr_icmh", 100, 120)
  assert doc["layers"]["machine"] == {"bytes": 300, "bpp": 8 * 300 / 12000}
  assert doc["layers"]["human"] == {"bytes": 150, "bpp": 8 * 150 / 12000}
  assert doc["file_bytes"] == path.stat().st_size
  assert doc["file_bpp"] == pytest.approx(8 * path.stat().st_size / 12000)


def test_info_text_marks_missing_human_layer_of_a_cut_file(tmp_path, capsys):
  path = _file(tmp_path, {0: b"m" * 300, 1: b"h" * 150})
  path.write_bytes(path.read_bytes()[:-150 - 9])
  assert cli.main(["info", str(path)]) == 0
  out = capsys.readouterr().out
  assert "system fr_icmh, image 120x100" in out
  assert "machine         300 bytes  0.2000 bpp" in out
  assert "human    missing" in out


def test_info_on_a_non_icmh_file_exits_1(tmp_path, capsys):
  (tmp_path / "x.icmh").write_bytes(b"GIF89a....")
  assert cli.main(["info", str(tmp_path / "x.icmh")]) == 1
  assert "not an .icmh file" in capsys.readouterr().err
  assert cli.main(["info", str(tmp_path / "missing.icmh")]) == 1
  assert "cannot read" in capsys.readouterr().err


def test_info_of_a_machine_only_system_says_it_has_no_human_layer(tmp_path, capsys):
  path = _file(tmp_path, {0: b"m" * 30}, system="sa_icm")
  assert cli.main(["info", str(path)]) == 0
  assert "human    none (sa_icm writes the machine layer only)" in capsys.readouterr().out
