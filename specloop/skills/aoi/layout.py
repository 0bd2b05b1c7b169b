"""The DEFT workspace layout (DESIGN.md §5): where each input lives under the workspace root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Split:
    """One labelled CSV of the workspace and the images directory its paths are relative to."""

    name: str
    csv: Path
    images_dir: Path
    required: bool = True


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def env_file(self) -> Path:
        return self.root / ".env"

    @property
    def spec(self) -> Path:
        return self.root / "specs" / "baseline_spec.yaml"

    @property
    def train_images(self) -> Path:
        return self.root / "train" / "images"

    @property
    def kpi_images(self) -> Path:
        return self.root / "kpi" / "images"

    @property
    def mining_pool_dir(self) -> Path:
        return self.root / "augmentation" / "mining_pool"

    @property
    def anomalygen_dir(self) -> Path:
        return self.root / "augmentation" / "anomalygen"

    @property
    def reconstructed_dir(self) -> Path:
        return self.anomalygen_dir / "reconstructed_image"

    @property
    def original_dir(self) -> Path:
        return self.anomalygen_dir / "original_image"

    @property
    def defect_spec(self) -> Path:
        return self.anomalygen_dir / "defect_spec.jsonl"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def dataset_card(self) -> Path:
        return self.root / "DATASET.md"

    def splits(self) -> list[Split]:
        """The labelled CSVs in the order the loop reads them (holdout is optional)."""
        return [
            Split("training", self.root / "train" / "base" / "training_set.csv", self.train_images),
            Split("validation", self.root / "train" / "base" / "validation_set.csv", self.train_images),
            Split("kpi", self.root / "kpi" / "testing_set.csv", self.kpi_images),
            Split("holdout", self.root / "kpi" / "holdout_set.csv", self.kpi_images, required=False),
            Split(
                "mining_pool",
                self.mining_pool_dir / "mining_pool.csv",
                self.mining_pool_dir / "images",
                required=False,
            ),
        ]

    def split(self, name: str) -> Split:
        for s in self.splits():
            if s.name == name:
                return s
        raise KeyError(name)

    def rel(self, path: Path) -> str:
        """`path` relative to the workspace root, for messages and manifests."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)
