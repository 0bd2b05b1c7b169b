"""The embedder interface, and the plumbing every embedder shares (devices, batches, progress).

A sample is embedded by its TEST side only (the `input_path` images, lights joined as the spec
joins them): the golden side is a shared reference that many samples point at, so it says
little about which defect or which part a sample shows, and embedding it would pull every
sample of one board towards the same point.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from specloop.errors import SpecloopError
from specloop.skills.aoi.images import load_joined

Item = Sequence[Path]


@runtime_checkable
class Embedder(Protocol):
    """Maps samples to L2-normalised float32 vectors.

    `name` and `version` together identify the model, its weights and the light join, so that a
    cached vector is reused only for the very same embedder.
    """

    name: str
    version: str
    dim: int

    def embed(self, items: Sequence[Item]) -> np.ndarray:
        """One row per item (the light files of one sample side), shape [n, dim], float32, L2-normalised."""
        ...


@dataclass(frozen=True)
class LightsJoin:
    """How the light images of one sample side are joined into one picture (DESIGN.md §5)."""

    concat_type: str | None = "linear"
    grid_map: Mapping[str, int] | None = None

    def tag(self) -> str:
        if self.concat_type == "grid":
            if self.grid_map:
                return f"grid{self.grid_map.get('x', 0)}x{self.grid_map.get('y', 0)}"
            return "grid"
        return "linear"

    def load(self, files: Item) -> np.ndarray:
        missing = [str(f) for f in files if not Path(f).is_file()]
        if missing:
            raise SpecloopError(f"{missing[0]}: image file not found (every light of a sample must exist).")
        return load_joined(list(files), self.concat_type, self.grid_map)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def batches(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )


def pick_device(device: str) -> str:
    """`auto` → `cuda` when a GPU is visible, else `cpu`; an explicit `cuda` without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SpecloopError(f"device {device!r} was asked for but no CUDA GPU is visible; use --device cpu.")
    return device


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class TorchEmbedder:
    """Shared loop for torch models: load+join images, preprocess, forward in batches, normalise.

    Subclasses set `name`, `version`, `dim`, `device`, `batch_size` and implement `_forward`,
    which takes a list of what `_load` returns (by default the joined HxWx3 uint8 picture of one
    item) and returns a [b, dim] tensor.
    """

    name: str
    version: str
    dim: int
    device: str
    batch_size: int = 32

    def __init__(self, join: LightsJoin, progress: bool) -> None:
        self.join = join
        self.progress = progress

    def _load(self, files: Item) -> np.ndarray:
        return self.join.load(files)

    def _forward(self, images: list[np.ndarray]):  # -> torch.Tensor
        raise NotImplementedError

    def embed(self, items: Sequence[Item]) -> np.ndarray:
        import torch

        out = np.zeros((len(items), self.dim), dtype=np.float32)
        with progress_bar(self.progress and len(items) > 0) as bar:
            task = bar.add_task(f"embedding ({self.name})", total=len(items))
            row = 0
            for chunk in batches(items, self.batch_size):
                images = [self._load(files) for files in chunk]
                with torch.inference_mode():
                    feats = self._forward(images)
                feats = feats.float().reshape(len(chunk), -1).cpu().numpy()
                out[row : row + len(chunk)] = feats
                row += len(chunk)
                bar.advance(task, len(chunk))
        return l2_normalise(out)
