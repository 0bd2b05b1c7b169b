"""Checkpoint selection: keep the candidate with the lower FAR@100%recall (DESIGN.md §5)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from specloop.skills.aoi.spec import ExperimentSpec
from specloop.skills.changenet.evaluate import evaluate
from specloop.skills.changenet.infer import infer

PREFERRED = "best_val"


def select_checkpoint(
    spec: ExperimentSpec,
    root: Path,
    candidates: dict[str, Path],
    csv: Path,
    images_dir: Path,
    out_dir: Path,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Infer and evaluate every candidate into out_dir/<name>/, choose the lower FAR@100%R (a tie goes
    to `best_val`, then to the first listed), write out_dir/selection.json and return it."""
    results: dict[str, dict[str, Any]] = {}
    for name, ckpt in candidates.items():
        sub = out_dir / name
        inference_csv = infer(spec, root, ckpt, csv, images_dir, sub / "inference.csv", progress=progress)
        m = evaluate(inference_csv, sub, plots=True)
        results[name] = {
            "checkpoint": str(ckpt),
            "inference_csv": str(inference_csv),
            "metrics_json": str(sub / "metrics.json"),
            "far_at_100_recall": m["far_at_100_recall"],
            "threshold_at_100_recall": m["threshold_at_100_recall"],
            "auroc": m["auroc"],
            "best_f1": m["best_f1"],
        }
    order = list(candidates)
    chosen = min(order, key=lambda n: (results[n]["far_at_100_recall"], n != PREFERRED, order.index(n)))
    selection = {
        "selected": chosen,
        "checkpoint": results[chosen]["checkpoint"],
        "far_at_100_recall": results[chosen]["far_at_100_recall"],
        "rule": "lower FAR@100%recall wins; a tie goes to best_val",
        "evaluated_on": str(csv),
        "candidates": results,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".selection.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(selection, indent=2) + "\n")
    os.replace(tmp, out_dir / "selection.json")
    return selection
