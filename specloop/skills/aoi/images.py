"""Where a row's images live on disk, and how its lights are joined into one picture.

An image file is `{images_dir}/{input_path}/{object_name}_{light}{image_ext}`, one per light of
`input_map` (ordered by the map's values), or `{object_name}{image_ext}` when there is no map.

Every image is opened through :func:`open_image` (a pixel-count limit, so a header claiming
10^10 pixels is refused before anything is decoded) and made 8-bit RGB by :func:`to_rgb`:
16-bit grey is scaled (x / 257, rounded), not clipped to white; a palette goes through its RGB
colours; an alpha channel is dropped (the colour values are kept as they are, not composited);
a 32-bit float image, or integers beyond 16 bits, are refused by name.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from specloop.errors import ContractError

# The check's largest plausible side, squared: anything bigger is refused before it is decoded.
MAX_PIXELS = 8192 * 8192
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
REFUSED_MODES = {"F": "a 32-bit float image"}


def light_names(input_map: Mapping[str, int] | None) -> list[str]:
    """Lights in the order of their index in `input_map`; empty when the map is empty."""
    if not input_map:
        return []
    return [name for name, _ in sorted(input_map.items(), key=lambda kv: (kv[1], kv[0]))]


def image_files(
    images_dir: Path, rel_dir: str, object_name: str, lights: Sequence[str], image_ext: str
) -> list[Path]:
    """The files of one side (input or golden) of a row, one per light."""
    base = images_dir / rel_dir
    if not lights:
        return [base / f"{object_name}{image_ext}"]
    return [base / f"{object_name}_{light}{image_ext}" for light in lights]


def grid_shape(n_lights: int, grid_map: Mapping[str, int] | None) -> tuple[int, int]:
    """(columns, rows) of a grid join; defaults to the smallest near-square grid."""
    if grid_map and "x" in grid_map and "y" in grid_map:
        return int(grid_map["x"]), int(grid_map["y"])
    cols = int(np.ceil(np.sqrt(max(n_lights, 1))))
    rows = int(np.ceil(max(n_lights, 1) / cols))
    return cols, rows


def join_lights(
    images: Sequence[np.ndarray], concat_type: str | None, grid_map: Mapping[str, int] | None = None
) -> np.ndarray:
    """Join per-light HxWx3 uint8 arrays: `linear` stacks vertically, `grid` tiles row-major."""
    if len(images) == 1:
        return images[0]
    if concat_type in (None, "linear"):
        return np.concatenate(list(images), axis=0)
    cols, rows = grid_shape(len(images), grid_map)
    h, w, c = images[0].shape
    canvas = np.zeros((rows * h, cols * w, c), dtype=images[0].dtype)
    for i, img in enumerate(images[: cols * rows]):
        r, col = divmod(i, cols)
        canvas[r * h : (r + 1) * h, col * w : (col + 1) * w] = img
    return canvas


def open_image(path: Path) -> Image.Image:
    """Open an image lazily, refusing one whose header claims more than MAX_PIXELS pixels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except Image.DecompressionBombError:
            raise ContractError(_too_large(path, None), rule="image-too-large") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise ContractError(_too_large(path, (w, h)), rule="image-too-large")
    return img


def _too_large(path: Path, size: tuple[int, int] | None) -> str:
    claim = f"{size[0]}x{size[1]} px" if size else "more pixels than Pillow's bomb limit"
    return f"image {path}: its header claims {claim}, over the {MAX_PIXELS:,} pixel limit (a decompression bomb?)."


def mode_problem(img: Image.Image) -> str | None:
    """Why an opened image has no faithful 8-bit RGB reading, or None when it has one."""
    if img.mode in REFUSED_MODES:
        return f"is {REFUSED_MODES[img.mode]} (mode {img.mode}); save it as 8- or 16-bit"
    return None


def to_rgb(img: Image.Image, path: Path) -> np.ndarray:
    """An opened image as HxWx3 uint8 (see the module docstring for each mode)."""
    problem = mode_problem(img)
    if problem is None and img.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(img)
        if values.size and (values.min() < 0 or values.max() > 65535):
            problem = f"holds values beyond 16 bits (mode {img.mode}, {values.min()}..{values.max()})"
        else:
            grey = ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
            return np.repeat(grey[:, :, None], 3, axis=2)
    if problem is not None:
        raise ContractError(f"image {path} {problem}.", rule="image-mode")
    if img.mode in ALPHA_MODES:
        return np.asarray(img.convert("RGBA"))[:, :, :3].copy()
    return np.asarray(img.convert("RGB"))


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to an HxWx3 uint8 array."""
    with open_image(path) as img:
        return to_rgb(img, path)


def load_joined(
    files: Sequence[Path], concat_type: str | None, grid_map: Mapping[str, int] | None = None
) -> np.ndarray:
    """Read every light of one side of a row and join them as the spec says."""
    return join_lights([read_rgb(f) for f in files], concat_type, grid_map)
