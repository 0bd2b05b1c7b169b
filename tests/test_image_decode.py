"""Images read right: each PNG mode decodes to the 8-bit RGB a reference numpy conversion gives, the
workspace check refuses what cannot be read faithfully, and a decompression bomb is refused unread."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from specloop.errors import ContractError
from specloop.skills.aoi.check import _ImageProbe
from specloop.skills.aoi.images import read_rgb

RNG = np.random.default_rng(0)


def _grey16(path: Path) -> np.ndarray:
    values = RNG.integers(0, 65536, size=(12, 16), dtype=np.uint16)
    values[0, 0], values[0, 1] = 0, 65535
    Image.fromarray(values).save(path)
    return np.repeat(np.rint(values / 257.0).astype(np.uint8)[:, :, None], 3, axis=2)


def _grey8(path: Path) -> np.ndarray:
    values = RNG.integers(0, 256, size=(12, 16), dtype=np.uint8)
    Image.fromarray(values, mode="L").save(path)
    return np.repeat(values[:, :, None], 3, axis=2)


def _palette(path: Path) -> np.ndarray:
    palette = RNG.integers(0, 256, size=(256, 3), dtype=np.uint8)
    index = RNG.integers(0, 256, size=(12, 16), dtype=np.uint8)
    img = Image.fromarray(index, mode="P")
    img.putpalette(palette.flatten().tolist())
    img.save(path)
    return palette[index]


def _rgba(path: Path) -> np.ndarray:
    values = RNG.integers(0, 256, size=(12, 16, 4), dtype=np.uint8)
    Image.fromarray(values, mode="RGBA").save(path)
    return values[:, :, :3]  # alpha dropped, colour kept as stored


def _grey_alpha(path: Path) -> np.ndarray:
    values = RNG.integers(0, 256, size=(12, 16, 2), dtype=np.uint8)
    Image.fromarray(values, mode="LA").save(path)
    return np.repeat(values[:, :, :1], 3, axis=2)


@pytest.mark.parametrize("make", [_grey16, _grey8, _palette, _rgba, _grey_alpha], ids=lambda f: f.__name__)
def test_decoded_pixels_match_a_reference_conversion(make, tmp_path: Path) -> None:
    path = tmp_path / "img.png"
    expected = make(path)
    got = read_rgb(path)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_sixteen_bit_grey_is_scaled_not_clipped_to_white(tmp_path: Path) -> None:
    path = tmp_path / "dark16.png"
    Image.fromarray(np.full((8, 8), 1000, dtype=np.uint16)).save(path)
    assert np.all(read_rgb(path) == 4)  # 1000 / 257 ≈ 3.9, where a plain convert("RGB") gives 255


def test_a_float_image_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "depth.tiff"
    Image.fromarray(np.zeros((8, 8), dtype=np.float32), mode="F").save(path)
    with pytest.raises(ContractError, match=r"depth\.tiff is a 32-bit float image"):
        read_rgb(path)
    assert "32-bit float" in str(_ImageProbe(tmp_path).probe(path))


def _bomb_png(path: Path, width: int, height: int) -> None:
    """A valid PNG signature and header claiming width x height pixels, with a tiny body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * 16)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    _bomb_png(path, 100_000, 100_000)
    with pytest.raises(ContractError, match=r"bomb.png: its header claims .*pixel limit") as info:
        read_rgb(path)
    assert info.value.rule == "image-too-large"
    assert "pixels than the limit" in str(_ImageProbe(tmp_path).probe(path))
