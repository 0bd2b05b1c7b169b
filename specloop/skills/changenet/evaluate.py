"""Evaluation of an `inference.csv`: the KPI, the metrics around it, the rows behind them, plots."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specloop.skills.changenet.kpi import (
    KPI_DEFINITION,
    auroc,
    best_f1,
    confusion_at,
    far_at_full_recall,
    threshold_table,
)
from specloop.skills.changenet.scores import SCORE_COLUMN, read_scores, write_csv_atomic


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def compute_metrics(df: pd.DataFrame, scores: np.ndarray, defect: np.ndarray) -> dict[str, Any]:
    far, thr = far_at_full_recall(scores, defect)
    f1, f1_thr = best_f1(scores, defect)
    at100 = confusion_at(scores, defect, thr)
    atf1 = confusion_at(scores, defect, f1_thr)
    per_type: dict[str, dict[str, Any]] = {}
    for label in sorted(set(df["label"][defect])):
        m = (df["label"] == label).to_numpy()
        s = scores[m]
        per_type[label] = {
            "count": int(m.sum()),
            "recall_at_100_threshold": float((s >= thr).mean()),
            "recall_at_f1_threshold": float((s >= f1_thr).mean()),
            "mean_score": float(s.mean()),
            "min_score": float(s.min()),
        }
    notes = []
    n_def, n_pass = int(defect.sum()), int((~defect).sum())
    if n_def == 0:
        notes.append(
            "no defect rows: recall is vacuously 100 %, FAR@100%R is 0.0 and the threshold is +inf (null)"
        )
    if n_pass == 0:
        notes.append("no PASS rows: no false alarm is possible, FAR@100%R is 0.0")
    return {
        "far_at_100_recall": far,
        "threshold_at_100_recall": _num(thr),
        "auroc": auroc(scores, defect),
        "best_f1": f1,
        "best_f1_threshold": _num(f1_thr),
        "precision_at_100_recall": at100["precision"],
        "recall_at_100_recall": at100["recall"],
        "accuracy_at_100_recall": at100["accuracy"],
        "precision_at_best_f1": atf1["precision"],
        "recall_at_best_f1": atf1["recall"],
        "accuracy_at_best_f1": atf1["accuracy"],
        "far_at_best_f1": atf1["far"],
        "confusion_at_100_recall": {k: at100[k] for k in ("tp", "fp", "tn", "fn")},
        "confusion_at_best_f1": {k: atf1[k] for k in ("tp", "fp", "tn", "fn")},
        "per_defect_type": per_type,
        "n_rows": int(scores.size),
        "n_pass": n_pass,
        "n_defect": n_def,
        "kpi_definition": KPI_DEFINITION,
        "kpi_notes": notes,
    }


def evaluate(inference_csv: Path, out_dir: Path, *, plots: bool = True) -> dict[str, Any]:
    """Write metrics.json, threshold_metrics.csv, missed_defects.csv, false_alarms.csv and PNG plots
    into `out_dir`; return the metrics dict.

    missed_defects.csv: defect rows below the best-F1 threshold (none are missed at the 100 %-recall
    threshold by construction). false_alarms.csv: PASS rows at or above the 100 %-recall threshold."""
    df, scores, defect = read_scores(inference_csv)
    metrics = compute_metrics(df, scores, defect)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(threshold_table(scores, defect), out_dir / "threshold_metrics.csv")
    thr = metrics["threshold_at_100_recall"]
    f1_thr = metrics["best_f1_threshold"]
    missed = df[defect & (scores < (f1_thr if f1_thr is not None else math.inf))].copy()
    missed["missed_at"] = "best_f1_threshold"
    write_csv_atomic(missed.sort_values(SCORE_COLUMN, key=pd.to_numeric), out_dir / "missed_defects.csv")
    alarms = df[~defect & (scores >= (thr if thr is not None else math.inf))].copy()
    write_csv_atomic(
        alarms.sort_values(SCORE_COLUMN, key=pd.to_numeric, ascending=False), out_dir / "false_alarms.csv"
    )
    metrics["inference_csv"] = str(inference_csv)
    if plots:
        from specloop.skills.changenet.plots import write_plots

        metrics["plots"] = [p.name for p in write_plots(df, scores, defect, metrics, out_dir)]
    tmp = out_dir / f".metrics.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    os.replace(tmp, out_dir / "metrics.json")
    return metrics
