"""A pre-seeded baseline: a model trained before the loop (e.g. by an AutoML stage) handed over in
`deft_state.json` as `iterations.baseline.stage_completed == "train"` with a `best_ckpt_path`.

The loop then trains no baseline: the hand-off checkpoint becomes both of the baseline's
candidates (`best_val.pth`, `latest.pth`) and inference → evaluate go on from there. Pre-flight
moves `stage_completed` on before the train stage starts, so the stage recognises a hand-off by
what a baseline trained in this run never has at that point: a `best_ckpt_path` and no
`train_seconds`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from specloop.errors import SpecloopError
from specloop.ledger.files import link_or_copy
from specloop.ledger.layout import CANDIDATES
from specloop.skills.changenet.checkpoint import checkpoint_spec, read_checkpoint


def handoff_checkpoint(baseline: dict[str, Any], run_dir: Path) -> Path | None:
    """The hand-off checkpoint named by the baseline's state, or None when it was not pre-seeded.

    A named checkpoint that is not there is an input error (one sentence), never a silent retrain."""
    value = baseline.get("best_ckpt_path")
    if not value or "train_seconds" in baseline:
        return None
    path = Path(str(value)).expanduser()
    path = path if path.is_absolute() else run_dir / path
    if not path.is_file():
        raise SpecloopError(
            f"deft_state.json: iterations.baseline.best_ckpt_path {path} (the pre-seeded baseline) does "
            "not exist.",
            rule="handoff-checkpoint",
        )
    return path


def adopt_checkpoint(checkpoint: Path, out_dir: Path) -> dict[str, Any]:
    """Make `checkpoint` the training stage's output: both candidates and a status.json saying so."""
    ckpt = read_checkpoint(checkpoint)
    spec = checkpoint_spec(ckpt, checkpoint)  # a checkpoint inference cannot read fails here
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in CANDIDATES:
        link_or_copy(checkpoint, out_dir / f"{name}.pth")
    status = {
        "state": "done",
        "preseeded_from": str(checkpoint),
        "epoch": ckpt.get("epoch"),
        "num_epochs": ckpt.get("epoch"),
        "backbone": spec.model.backbone.type,
        "history": list(ckpt.get("history", [])),
        "best_metric": ckpt.get("best_metric"),
        "best_epoch": ckpt.get("best_epoch"),
        "monitor": ckpt.get("monitor"),
    }
    tmp = out_dir / f".status.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / "status.json")
    return status
