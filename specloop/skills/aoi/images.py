"""Where a row's images live on disk, and how its lights are joined into one picture.

An image file is `{images_dir}/{input_path}/{object_name}_{light}{image_ext}`, one per light of
`input_map` (ordered by the map's values), or `{object_name}{image_ext}` when there is no map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image


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


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to an HxWx3 uint8 array."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def load_joined(
    files: Sequence[Path], concat_type: str | None, grid_map: Mapping[str, int] | None = None
) -> np.ndarray:
    """Read every light of one side of a row and join them as the spec says."""
    return join_lights([read_rgb(f) for f in files], concat_type, grid_map)
