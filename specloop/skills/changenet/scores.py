"""The inference CSV: the contract's rows plus a score column, written atomically and read back
checked. Apart from `infer` so that reading scores (evaluate, the audit) needs no torch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from specloop.errors import SpecloopError
from specloop.skills.aoi.schema import FIRST_DATA_LINE, GOOD_LABEL, read_csv

SCORE_COLUMN = "siamese_score"


def write_csv_atomic(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    df.to_csv(tmp, index=False, lineterminator="\n")
    os.replace(tmp, path)
    return path


def read_scores(inference_csv: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The inference rows, their scores and defect flags; bad rows raise one sentence."""
    df = read_csv(inference_csv)
    if SCORE_COLUMN not in df.columns:
        raise SpecloopError(
            f"{inference_csv}: no {SCORE_COLUMN} column; evaluate reads the output of `changenet infer` "
            "[inference-schema]."
        )
    scores = pd.to_numeric(df[SCORE_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.nonzero(~np.isfinite(scores))[0]
    if bad.size:
        raise SpecloopError(
            f"{inference_csv}, line {int(bad[0]) + FIRST_DATA_LINE}: {SCORE_COLUMN} "
            f"{df[SCORE_COLUMN].iloc[int(bad[0])]!r} is not a finite number.",
            rule="inference-score",
        )
    lower_pass = df.index[(df["label"] != GOOD_LABEL) & (df["label"].str.strip().str.upper() == GOOD_LABEL)]
    if len(lower_pass):
        i = int(lower_pass[0])
        raise SpecloopError(
            f"{inference_csv}, line {i + FIRST_DATA_LINE}: label {df['label'].iloc[i]!r} must be exactly "
            "'PASS'.",
            rule="label-pass-case",
        )
    return df, scores, (df["label"] != GOOD_LABEL).to_numpy()
