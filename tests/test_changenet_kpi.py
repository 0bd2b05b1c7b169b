"""The FAR@100%-recall KPI and the evaluation outputs, against hand-computed cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from specloop.errors import SpecloopError
from specloop.skills.changenet.api import evaluate, far_at_full_recall
from specloop.skills.changenet.kpi import auroc, best_f1, threshold_table


def _kpi(defects: list[float], goods: list[float]) -> tuple[float, float]:
    scores = np.array(defects + goods)
    labels = np.array([True] * len(defects) + [False] * len(goods))
    return far_at_full_recall(scores, labels)


def test_threshold_is_lowest_defect_and_ties_are_false_alarms() -> None:
    # lowest defect 0.6; PASS at 0.6 (tie) and 0.7 are flagged, 0.1 and 0.3 are not: FAR 2/4
    assert _kpi([0.9, 0.6], [0.1, 0.6, 0.7, 0.3]) == (0.5, 0.6)


def test_defect_scoring_lowest_flags_every_pass() -> None:
    assert _kpi([0.05, 0.9], [0.1, 0.2, 0.3]) == (1.0, 0.05)


def test_single_defect() -> None:
    far, thr = _kpi([0.5], [0.4, 0.5, 0.6])
    assert thr == 0.5
    assert far == pytest.approx(2 / 3)


def test_perfect_separation_has_zero_far() -> None:
    assert _kpi([0.8, 0.9], [0.1, 0.79]) == (0.0, 0.8)


def test_all_pass_set() -> None:
    far, thr = _kpi([], [0.1, 0.5])
    assert far == 0.0
    assert math.isinf(thr)


def test_all_defect_set() -> None:
    assert _kpi([0.3, 0.7], []) == (0.0, 0.3)


def test_empty_set() -> None:
    far, thr = _kpi([], [])
    assert far == 0.0 and math.isinf(thr)


def test_nan_scores_and_length_mismatch_are_errors() -> None:
    with pytest.raises(SpecloopError, match="NaN"):
        far_at_full_recall(np.array([0.1, np.nan]), np.array([True, False]))
    with pytest.raises(SpecloopError, match="pair up"):
        far_at_full_recall(np.array([0.1, 0.2]), np.array([True]))


def test_threshold_table_and_best_f1() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    defect = np.array([True, False, True, False, False])
    table = threshold_table(scores, defect)
    assert math.isinf(table["threshold"].iloc[0]) and table["tp"].iloc[0] == 0
    row = table[table["threshold"] == 0.7].iloc[0]
    assert (row.tp, row.fp, row.tn, row.fn) == (2, 1, 2, 0)
    # F1 at 0.9: P=1, R=.5 -> .667; at 0.7: P=2/3, R=1 -> .8 (best)
    f1, thr = best_f1(scores, defect)
    assert thr == 0.7 and f1 == pytest.approx(0.8)
    assert auroc(scores, defect) == pytest.approx(5 / 6)
    assert auroc(scores, np.zeros(5, bool)) is None


def _inference_csv(path: Path) -> Path:
    rows = [
        ("PASS", 0.10), ("PASS", 0.20), ("PASS", 0.65), ("PASS", 0.60),
        ("missing", 0.95), ("missing", 0.90), ("bridge", 0.60), ("bridge", 0.85),
    ]  # fmt: skip
    df = pd.DataFrame(
        {
            "input_path": [f"test/{i}" for i in range(len(rows))],
            "golden_path": [f"golden/{i}" for i in range(len(rows))],
            "label": [r[0] for r in rows],
            "object_name": [f"obj{i}" for i in range(len(rows))],
            "siamese_score": [r[1] for r in rows],
        }
    )
    df.to_csv(path, index=False)
    return path


def test_evaluate_writes_every_output(tmp_path: Path) -> None:
    csv = _inference_csv(tmp_path / "inference.csv")
    m = evaluate(csv, tmp_path / "eval")
    # threshold 0.60 (lowest defect, a bridge); PASS 0.60 (tie) and 0.65 flagged -> FAR 2/4
    assert m["far_at_100_recall"] == 0.5
    assert m["threshold_at_100_recall"] == 0.6
    assert (m["n_pass"], m["n_defect"]) == (4, 4)
    assert m["per_defect_type"]["bridge"]["count"] == 2
    assert m["per_defect_type"]["missing"]["recall_at_100_threshold"] == 1.0
    # best F1 at 0.85: P=1, R=.75 -> 0.857 beats 0.6: P=4/6, R=1 -> 0.8
    assert m["best_f1_threshold"] == 0.85
    assert m["per_defect_type"]["bridge"]["recall_at_f1_threshold"] == 0.5
    assert m["recall_at_best_f1"] == 0.75 and m["precision_at_best_f1"] == 1.0
    for key in ("auroc", "best_f1", "accuracy_at_100_recall", "precision_at_100_recall", "kpi_definition"):
        assert key in m
    out = tmp_path / "eval"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["far_at_100_recall"] == 0.5
    missed = pd.read_csv(out / "missed_defects.csv")
    assert list(missed["siamese_score"]) == [0.6]
    alarms = pd.read_csv(out / "false_alarms.csv")
    assert list(alarms["siamese_score"]) == [0.65, 0.6]
    assert len(pd.read_csv(out / "threshold_metrics.csv")) == 8  # +inf and 7 distinct scores
    for png in (
        "score_histogram.png",
        "far_vs_recall.png",
        "confusion_at_100_recall.png",
        "confusion_at_best_f1.png",
    ):
        assert (out / png).stat().st_size > 1000


def test_evaluate_all_pass_writes_null_threshold(tmp_path: Path) -> None:
    pd.DataFrame(
        {"input_path": ["a", "b"], "golden_path": ["g", "g"], "label": ["PASS", "PASS"], "object_name": ["x", "y"],
         "siamese_score": [0.2, 0.3]}
    ).to_csv(tmp_path / "i.csv", index=False)  # fmt: skip
    m = evaluate(tmp_path / "i.csv", tmp_path / "e", plots=False)
    assert m["far_at_100_recall"] == 0.0 and m["threshold_at_100_recall"] is None
    assert m["kpi_notes"] and json.loads((tmp_path / "e" / "metrics.json").read_text())["auroc"] is None


def test_evaluate_rejects_bad_inference_csv(tmp_path: Path) -> None:
    csv = _inference_csv(tmp_path / "i.csv")
    df = pd.read_csv(csv)
    df.drop(columns=["siamese_score"]).to_csv(tmp_path / "noscore.csv", index=False)
    with pytest.raises(SpecloopError, match=r"no siamese_score column"):
        evaluate(tmp_path / "noscore.csv", tmp_path / "e1")
    df["siamese_score"] = df["siamese_score"].astype(object)
    df.loc[2, "siamese_score"] = "oops"
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SpecloopError, match=r"line 4: siamese_score 'oops' is not a finite number"):
        evaluate(tmp_path / "bad.csv", tmp_path / "e2")
    df.drop(columns=["golden_path"]).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(SpecloopError, match="missing mandatory column"):
        evaluate(tmp_path / "cols.csv", tmp_path / "e3")
    assert not (tmp_path / "e1" / "metrics.json").exists()
