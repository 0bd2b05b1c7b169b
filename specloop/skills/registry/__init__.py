"""Continuous improvement: the model registry (MLflow), the promotion gate, quality checks, new-data
detection and the watcher's records under `results/`.

Importing this package loads neither torch nor mlflow; the functions that need them import them.
"""

from specloop.skills.registry.journal import set_paused
from specloop.skills.registry.snapshot import snapshot

__all__ = ["set_paused", "snapshot"]
