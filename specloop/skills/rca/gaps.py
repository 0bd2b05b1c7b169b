"""Which KPI rows hold the false-alarm rate up, measured against the 100 %-recall threshold.

Signed weakness (higher = weaker):
- PASS rows: `score - t100`, where `t100` is the lowest defect score (the threshold that keeps
  every defect flagged). A PASS row with weakness >= 0 is a false alarm at that threshold.
- Defect rows: `t_target - score`, where `t_target` is the PASS score the threshold must exceed
  for the FAR target to hold. A defect with weakness >= 0 drags the threshold down into the
  PASS scores: the target cannot be met while it is still flagged.
The weak rows of each label, weakest first, up to `top_k_per_label`, are the loop's targets.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specloop.ledger.files import atomic_write_json, atomic_write_text
from specloop.skills.aoi.schema import GOOD_LABEL
from specloop.skills.changenet.kpi import far_at_full_recall

SCORE = "siamese_score"


def target_threshold(pass_scores: np.ndarray, far_target: float) -> float:
    """The PASS score a threshold must exceed so that FP / n_pass < far_target (−inf if none needed)."""
    n = len(pass_scores)
    if n == 0:
        return -math.inf
    allowed = math.ceil(far_target * n) - 1  # largest FP count with FP/n strictly below the target
    if allowed >= n:
        return -math.inf
    ordered = np.sort(pass_scores)[::-1]
    return float(ordered[max(allowed, 0)])


def analyze_gaps(
    inference_csv: Path, out_dir: Path, *, far_target: float, top_k_per_label: int
) -> dict[str, Any]:
    """Write kpi_gaps.parquet, threshold.txt, metrics.json, weak_samples_breakdown.txt (+ unreachable_kpi.txt)."""
    df = pd.read_csv(inference_csv, dtype=str, keep_default_na=False)
    scores = df[SCORE].astype(float).to_numpy()
    is_defect = (df["label"] != GOOD_LABEL).to_numpy()
    pass_scores, defect_scores = scores[~is_defect], scores[is_defect]
    far, t100 = far_at_full_recall(scores, is_defect)
    t_target = target_threshold(pass_scores, far_target)

    weakness = np.where(is_defect, t_target - scores, scores - t100)
    gaps = df.copy()
    gaps[SCORE] = scores
    gaps["is_defect"] = is_defect
    gaps["weakness"] = weakness
    gaps["is_weak"] = weakness >= 0
    gaps = gaps.sort_values(["label", "weakness"], ascending=[True, False], kind="stable")
    gaps["rank_in_label"] = gaps.groupby("label").cumcount() + 1
    gaps["selected"] = gaps["is_weak"] & (gaps["rank_in_label"] <= top_k_per_label)

    out_dir.mkdir(parents=True, exist_ok=True)
    gaps.to_parquet(out_dir / "kpi_gaps.parquet", index=False)
    atomic_write_text(out_dir / "threshold.txt", f"{t100:.8f}\n")
    selected = gaps[gaps["selected"]]
    weak_by_label = {str(k): int(v) for k, v in gaps[gaps["is_weak"]].groupby("label").size().items()}
    metrics = {
        "far_at_100_recall": far,
        "threshold_at_100_recall": t100,
        "far_target": far_target,
        "target_threshold": t_target,
        "kpi_met": far < far_target,
        "n_pass": int((~is_defect).sum()),
        "n_defect": int(is_defect.sum()),
        "weak_by_label": weak_by_label,
        "selected_by_label": {str(k): int(v) for k, v in selected.groupby("label").size().items()},
        "n_selected": len(selected),
        "weak_by_label_board": {
            str(label): {str(b): int(n) for b, n in group.groupby("boardname").size().items()}
            for label, group in gaps[gaps["is_weak"]].groupby("label")
        },
    }
    atomic_write_json(out_dir / "metrics.json", metrics)
    atomic_write_text(out_dir / "weak_samples_breakdown.txt", _breakdown(gaps, selected, t100, t_target))
    unreachable = out_dir / "unreachable_kpi.txt"
    if far >= far_target and len(defect_scores):
        blockers = gaps[gaps["is_defect"] & gaps["is_weak"]]
        lines = [
            f"FAR@100%recall {far:.2%} does not meet the target {far_target:.2%} at any threshold that keeps "
            f"every defect flagged.",
            f"{len(blockers)} defect row(s) score at or below {t_target:.4f}, the PASS score the threshold "
            "must exceed; each would have to be missed to reach the target:",
        ]
        lines += [
            f"  {r.label:<14} {r.boardname:<10} {r.object_name:<24} score {r.siamese_score:.4f}"
            for r in blockers.itertuples()
        ]
        atomic_write_text(unreachable, "\n".join(lines) + "\n")
    else:
        unreachable.unlink(missing_ok=True)
    return metrics


def _breakdown(gaps: pd.DataFrame, selected: pd.DataFrame, t100: float, t_target: float) -> str:
    lines = [
        f"threshold at 100% recall: {t100:.6f}",
        f"threshold needed for the FAR target: > {t_target:.6f}",
        "",
        "weak rows per label (selected / weak / total):",
    ]
    for label, group in gaps.groupby("label"):
        lines.append(
            f"  {label:<16} {int(group['selected'].sum()):>4} / {int(group['is_weak'].sum()):>4} / {len(group):>4}"
        )
    lines += ["", "selected targets per label x board:"]
    if len(selected):
        table = selected.groupby(["label", "boardname"]).size()
        lines += [f"  {label:<16} {board:<12} {n:>4}" for (label, board), n in table.items()]
    else:
        lines.append("  (none)")
    return "\n".join(lines) + "\n"


def explain_gaps(metrics: dict[str, Any]) -> str:
    """The RCA findings in words: where the false alarms and the hard defects are, and why they count."""
    far, t100, t_target = (
        metrics["far_at_100_recall"],
        metrics["threshold_at_100_recall"],
        metrics["target_threshold"],
    )
    by_board = metrics.get("weak_by_label_board", {})

    def boards(label: str) -> str:
        counts = sorted(by_board.get(label, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        return ", ".join(f"{b} {n}" for b, n in counts)

    false_alarms = metrics["weak_by_label"].get(GOOD_LABEL, 0)
    parts = [
        f"FAR@100%R is {far:.2%}: to flag every defect the threshold must sit at {t100:.4f}, and "
        f"{false_alarms} of {metrics['n_pass']} PASS rows score above it."
    ]
    if false_alarms:
        parts.append(f"The false alarms come from boards {boards(GOOD_LABEL)}.")
    hard = {k: v for k, v in metrics["weak_by_label"].items() if k != GOOD_LABEL}
    if hard:
        listed = "; ".join(f"{label} {n} ({boards(label)})" for label, n in sorted(hard.items()))
        parts.append(
            f"The threshold the target needs is {t_target:.4f}; these defects score at or below it, so they "
            f"hold the threshold down: {listed}."
        )
    elif metrics["kpi_met"]:
        parts.append("Every defect scores above every PASS row the target allows to pass.")
    parts.append(
        f"{metrics['n_selected']} of the weakest rows were selected as targets for the next iteration."
    )
    return " ".join(parts)
