"""A cheap, deterministic baseline: each sample is its downsampled, standardised pixels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from specloop.skills.mining.embedders.base import Item, LightsJoin, batches, l2_normalise, progress_bar


class PixelEmbedder:
    """Box-downsample the joined picture to `side`×`side` RGB, subtract its mean, L2-normalise.

    Subtracting each picture's own mean makes cosine similarity a correlation of the layouts, so a
    uniformly brighter photo of the same part stays close. No model, no weights, no GPU.
    """

    name = "pixels"

    def __init__(self, join: LightsJoin | None = None, *, side: int = 24, progress: bool = True) -> None:
        self.join = join or LightsJoin()
        self.side = side
        self.dim = side * side * 3
        self.progress = progress
        self.version = f"box{side}-centered-v1|{self.join.tag()}"

    def _vector(self, picture: np.ndarray) -> np.ndarray:
        small = Image.fromarray(picture).resize((self.side, self.side), Image.Resampling.BOX)
        v = np.asarray(small, dtype=np.float32).reshape(-1) / 255.0
        return v - v.mean()

    def embed(self, items: Sequence[Item]) -> np.ndarray:
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        with progress_bar(self.progress and len(items) > 0) as bar:
            task = bar.add_task("embedding (pixels)", total=len(items))
            row = 0
            for chunk in batches(items, 256):
                for files in chunk:
                    out[row] = self._vector(self.join.load(files))
                    row += 1
                bar.advance(task, len(chunk))
        return l2_normalise(out)
