"""Where the registry and the watcher keep their records: all under the workspace's `results/`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODEL_NAME = "changenet"
CHAMPION_ALIAS = "champion"


@dataclass(frozen=True)
class WatchLayout:
    """Every path the registry and watcher write, named once."""

    ws: Path

    @property
    def results(self) -> Path:
        return self.ws / "results"

    @property
    def registry_dir(self) -> Path:
        return self.results / "registry"

    @property
    def store(self) -> Path:
        """The default MLflow store: tracking and model registry in one SQLite file."""
        return self.registry_dir / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.registry_dir / "mlruns"

    def version_dir(self, vid: str) -> Path:
        return self.registry_dir / "versions" / vid

    @property
    def watch_dir(self) -> Path:
        return self.results / "watch"

    @property
    def paused_flag(self) -> Path:
        return self.watch_dir / "PAUSED"

    @property
    def state(self) -> Path:
        return self.watch_dir / "state.json"

    @property
    def events(self) -> Path:
        return self.watch_dir / "events.jsonl"

    @property
    def processed(self) -> Path:
        """The processed-rows record and the last-seen mark of the mining pool."""
        return self.watch_dir / "processed.json"

    @property
    def rounds(self) -> Path:
        return self.watch_dir / "rounds"

    @property
    def current_round(self) -> Path:
        """The round in progress (its rows and step); a restart finishes it before anything new."""
        return self.watch_dir / "current_round.json"

    @property
    def best_model(self) -> Path:
        return self.results / "best_model.json"

    @property
    def best_model_spec(self) -> Path:
        return self.results / "best_model_inference_spec.yaml"
