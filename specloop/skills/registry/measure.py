"""A model's numbers on the workspace's sets: golden (the gate's), KPI, holdout (reported only), val."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from specloop.skills.aoi.layout import Split, Workspace

GOLDEN_CSV = "golden_set.csv"


def golden_split(ws: Path) -> Split:
    """`kpi/golden_set.csv` when present, else the KPI set; never the holdout."""
    w = Workspace(ws)
    golden = w.root / "kpi" / GOLDEN_CSV
    if golden.is_file():
        return Split("golden", golden, w.kpi_images)
    return w.split("kpi")


def golden_hash(ws: Path) -> str:
    return hashlib.sha256(golden_split(ws).csv.read_bytes()).hexdigest()


def measure(ws: Path, checkpoint: Path, out_dir: Path, spec: Any) -> dict[str, float | None]:
    """FAR@100%R of `checkpoint` on each set (infer + evaluate into out_dir/<set>/)."""
    from specloop.skills.changenet.api import evaluate, infer

    w = Workspace(ws)
    sets = {
        "golden_far": golden_split(ws),
        "kpi_far": w.split("kpi"),
        "holdout_far": w.split("holdout"),
        "val_far": w.split("validation"),
    }
    out: dict[str, float | None] = {}
    done: dict[Path, float] = {}
    for key, split in sets.items():
        if not split.csv.is_file():
            out[key] = None
            continue
        if split.csv not in done:
            sub = out_dir / key.removesuffix("_far")
            csv = infer(
                spec, ws, checkpoint, split.csv, split.images_dir, sub / "inference.csv", progress=False
            )
            done[split.csv] = float(evaluate(csv, sub, plots=False)["far_at_100_recall"])
        out[key] = done[split.csv]
    return out
