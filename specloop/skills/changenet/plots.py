"""PNG plots of an evaluation: score histograms by label, FAR vs recall, confusion matrices."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from specloop.skills.changenet.kpi import threshold_table


def _save(fig: Any, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write_plots(
    df: pd.DataFrame, scores: np.ndarray, defect: np.ndarray, metrics: dict[str, Any], out_dir: Path
) -> list[Path]:
    out: list[Path] = []
    thr, f1_thr = metrics["threshold_at_100_recall"], metrics["best_f1_threshold"]

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(float(scores.min()), float(scores.max()) + 1e-9, 40) if scores.size else 10
    for label in sorted(set(df["label"])):
        m = (df["label"] == label).to_numpy()
        ax.hist(scores[m], bins=bins, alpha=0.55, label=f"{label} ({int(m.sum())})")
    for value, name, style in ((thr, "100% recall", "--"), (f1_thr, "best F1", ":")):
        if value is not None:
            ax.axvline(value, color="k", linestyle=style, label=f"{name} threshold {value:.3g}")
    ax.set_xlabel("siamese_score (defect score)")
    ax.set_ylabel("rows")
    ax.set_title("Score histogram by label")
    ax.legend(fontsize=7)
    out.append(_save(fig, out_dir / "score_histogram.png"))

    table = threshold_table(scores, defect)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(table["far"], table["recall"], marker=".", markersize=3)
    ax.axvline(
        metrics["far_at_100_recall"],
        color="r",
        linestyle="--",
        label=f"FAR@100%R {metrics['far_at_100_recall']:.1%}",
    )
    ax.set_xlabel("false-alarm rate (PASS flagged)")
    ax.set_ylabel("defect recall")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    auroc = metrics["auroc"]
    ax.set_title(f"FAR vs recall (AUROC {auroc:.3f})" if auroc is not None else "FAR vs recall")
    ax.legend(fontsize=8)
    out.append(_save(fig, out_dir / "far_vs_recall.png"))

    for key, name, fname in (
        ("confusion_at_100_recall", "100% recall", "confusion_at_100_recall.png"),
        ("confusion_at_best_f1", "best F1", "confusion_at_best_f1.png"),
    ):
        c = metrics[key]
        mat = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
        fig, ax = plt.subplots(figsize=(3.6, 3.2))
        ax.imshow(mat, cmap="Blues")
        for (i, j), v in np.ndenumerate(mat):
            ax.text(j, i, str(v), ha="center", va="center", color="red" if i != j else "black")
        ax.set_xticks([0, 1], ["PASS", "defect"])
        ax.set_yticks([0, 1], ["PASS", "defect"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"Confusion at {name} threshold", fontsize=9)
        out.append(_save(fig, out_dir / fname))
    return out
