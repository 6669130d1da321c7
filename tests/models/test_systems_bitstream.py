"""Header checks of `.icmh` decoding that run before any network (no parameters needed)."""

import pytest

from icmh_jax.entropy import container
from icmh_jax.errors import BitstreamError
from icmh_jax.models import registry, scalable


def _file(system, h, w, pad):
  header = container.Header(system.name, scalable.config_digest(system), h, w, pad)
  return container.write_container(header, {0: container.pack_streams([b"", b""])})


def test_huge_claimed_image_is_refused_before_decoding():
  system = registry.get_system("sa_icm", {})
  data = _file(system, 65536, 65536, (0, 0, 0, 0))
  with pytest.raises(BitstreamError, match="65536x65536 \\(padded\\) image, more than"):
    system.decompress(None, data, layer="machine")


@pytest.mark.parametrize("pad,match", [((0, 0, 0, 128), "not below the model's pad multiple"),
                                       ((1, 0, 0, 0), r"padding \(1, 0, 0, 0\) is not what the "
                                                      r"encoder writes for a 128x128 image")])
def test_inconsistent_padding_is_refused(pad, match):
  system = registry.get_system("fr_icmh", {})
  with pytest.raises(BitstreamError, match=match):
    system.decompress(None, _file(system, 128, 128, pad), layer="machine")


def test_unknown_layer_name_is_a_value_error():
  system = registry.get_system("fr_icmh", {})
  with pytest.raises(ValueError, match="layer must be one of machine, human"):
    system.decompress(None, _file(system, 128, 128, (0, 0, 0, 0)), layer="both")
