"""`results/best_model.json` and `results/best_model_inference_spec.yaml`: always the champion.

The champion's inference spec is written into its version folder and beside best_model.json; every
file is replaced whole (temp name, then rename), the specs first, so a reader that follows
best_model.json always finds the matching spec and checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from specloop.ledger.files import atomic_write_json, atomic_write_text, read_json
from specloop.skills.aoi.layout import Workspace
from specloop.skills.registry.layout import WatchLayout

TRAIN_SPEC = "spec.yaml"
INFERENCE_SPEC = "inference_spec.yaml"


def inference_spec_text(ws: Path, train_spec: Path, checkpoint: Path) -> str:
    """The training spec turned into one that scores the KPI set with `checkpoint`."""
    conf = OmegaConf.load(train_spec)
    kpi = Workspace(ws).split("kpi")
    for key, value in {
        "inference.checkpoint": str(checkpoint),
        "evaluate.checkpoint": str(checkpoint),
        "dataset.classify.infer_dataset.csv_path": str(kpi.csv),
        "dataset.classify.infer_dataset.images_dir": str(kpi.images_dir),
        "train.pretrained_model_path": None,
        "train.resume_training_checkpoint_path": None,
    }.items():
        OmegaConf.update(conf, key, value, force_add=True)
    return OmegaConf.to_yaml(conf)


def write_champion_files(ws: Path, version: dict[str, Any], uri: str) -> dict[str, Any]:
    """Point best_model.json and the inference spec at `version`; return the best_model record."""
    lay = WatchLayout(ws)
    vdir = lay.version_dir(version["version"])
    checkpoint = Path(version["checkpoint"])
    spec = vdir / INFERENCE_SPEC
    text = inference_spec_text(ws, vdir / TRAIN_SPEC, checkpoint)
    atomic_write_text(spec, text)
    atomic_write_text(lay.best_model_spec, text)
    record = {
        "version": version["version"],
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": version["model_hash"],
        "data_hash": version["data_hash"],
        "metrics": version["metrics"],
        "kpi_far": version["metrics"].get("kpi_far"),
        "holdout_far": version["metrics"].get("holdout_far"),
        "golden_far": version["metrics"].get("golden_far"),
        "spec": str(spec),
        "registry": uri,
        "mlflow_version": version["mlflow_version"],
    }
    atomic_write_json(lay.best_model, record)
    return record


def sync_champion_files(ws: Path, champion: dict[str, Any] | None, uri: str) -> bool:
    """Rewrite the champion files when they name another version or file (a kill between the alias
    write and the files, or a copied workspace); True when they were rewritten."""
    if champion is None:
        return False
    path = WatchLayout(ws).best_model
    try:
        current = read_json(path)
    except (FileNotFoundError, ValueError):
        current = {}
    if current.get("version") == champion["version"] and current.get("checkpoint") == champion["checkpoint"]:
        return False
    write_champion_files(ws, champion, uri)
    return True
