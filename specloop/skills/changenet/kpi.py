"""The KPI: false-alarm rate at 100 % defect recall (DESIGN.md §5), and the metrics around it.

Scores are defect scores: higher means more likely a defect. Every threshold reported here is a
score value `t` and a row is flagged as a defect when `score >= t`. That is the DESIGN.md rule
"defect when score > threshold" applied at the highest threshold that still flags every defect,
where a good part scoring exactly at it counts as a false alarm.

Degenerate sets, defined so that a loop comparing FARs never sees NaN:
- no defect rows: every threshold keeps (vacuous) 100 % recall; the threshold is +inf (nothing is
  flagged) and FAR is 0.0.
- no PASS rows: there is no good part that could be a false alarm; FAR is 0.0 and the threshold is
  the lowest defect score.
- both empty: FAR 0.0, threshold +inf.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from specloop.errors import SpecloopError

KPI_DEFINITION = (
    "FAR@100%recall = FP / (FP + TN) over PASS rows at threshold t = the lowest defect score; a row is "
    "flagged when score >= t, so every defect is caught and a PASS row tied with the lowest defect "
    "counts as a false alarm. No defect rows: FAR 0.0, t = +inf (null in JSON). No PASS rows: FAR 0.0."
)


def _check(scores: np.ndarray, is_defect: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    d = np.asarray(is_defect, dtype=bool).ravel()
    if s.shape != d.shape:
        raise SpecloopError(f"{s.size} scores but {d.size} labels: they must pair up one to one.")
    if not np.isfinite(s).all():
        raise SpecloopError(
            f"{int((~np.isfinite(s)).sum())} score(s) are NaN or infinite; scores must be finite."
        )
    return s, d


def far_at_full_recall(scores: np.ndarray, is_defect: np.ndarray) -> tuple[float, float]:
    """(FAR, threshold) at 100 % recall, exactly as DESIGN.md §5 defines it (see module docstring)."""
    s, d = _check(scores, is_defect)
    if not d.any():
        return 0.0, math.inf
    threshold = float(s[d].min())
    good = s[~d]
    if good.size == 0:
        return 0.0, threshold
    return float((good >= threshold).sum() / good.size), threshold


def threshold_table(scores: np.ndarray, is_defect: np.ndarray) -> pd.DataFrame:
    """Confusion counts and rates at every distinct score used as a threshold (flag if >= t),
    highest threshold first; plus +inf (nothing flagged) as the first row."""
    s, d = _check(scores, is_defect)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, d_sorted = s[order], d[order]
    n_def, n_pass = int(d.sum()), int((~d).sum())
    # Positions where the next score differs: flagging everything up to and including them.
    last_of_value = np.r_[np.nonzero(np.diff(s_sorted))[0], s.size - 1] if s.size else np.array([], int)
    tp = np.cumsum(d_sorted)[last_of_value] if s.size else np.array([], int)
    fp = np.cumsum(~d_sorted)[last_of_value] if s.size else np.array([], int)
    thr = s_sorted[last_of_value] if s.size else np.array([])
    tp = np.r_[0, tp].astype(int)
    fp = np.r_[0, fp].astype(int)
    thr = np.r_[math.inf, thr]
    fn, tn = n_def - tp, n_pass - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
        recall = np.where(n_def > 0, tp / max(n_def, 1), 1.0)
        far = np.where(n_pass > 0, fp / max(n_pass, 1), 0.0)
        f1 = np.where(
            precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0
        )
    accuracy = (tp + tn) / max(s.size, 1)
    return pd.DataFrame(
        {
            "threshold": thr,
            "tp": tp,
            "fp": fp,
            "tn": tn,
            "fn": fn,
            "precision": precision,
            "recall": recall,
            "far": far,
            "f1": f1,
            "accuracy": accuracy,
        }
    )


def best_f1(scores: np.ndarray, is_defect: np.ndarray) -> tuple[float, float]:
    """(best F1, its threshold); ties go to the higher threshold (fewer alarms). With no defects F1 is
    0.0 everywhere and the threshold is +inf."""
    table = threshold_table(scores, is_defect)
    if not np.asarray(is_defect, dtype=bool).any():
        return 0.0, math.inf
    i = int(np.argmax(table["f1"].to_numpy()))
    return float(table["f1"].iloc[i]), float(table["threshold"].iloc[i])


def auroc(scores: np.ndarray, is_defect: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half); None when either class is absent."""
    s, d = _check(scores, is_defect)
    if d.all() or not d.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(d.astype(int), s))


def confusion_at(scores: np.ndarray, is_defect: np.ndarray, threshold: float) -> dict[str, float]:
    s, d = _check(scores, is_defect)
    flag = s >= threshold
    tp, fp = int((flag & d).sum()), int((flag & ~d).sum())
    fn, tn = int((~flag & d).sum()), int((~flag & ~d).sum())
    return {
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "far": fp / (fp + tn) if fp + tn else 0.0,
        "accuracy": (tp + tn) / s.size if s.size else 0.0,
    }
