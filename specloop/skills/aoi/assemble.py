"""Assemble an iteration's training CSV (monotonic growth with provenance) and validate it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from specloop.ledger.files import atomic_write_json
from specloop.skills.aoi.images import image_files
from specloop.skills.aoi.schema import COLUMNS, GOOD_LABEL, leakage_keys, pad_columns, read_csv, write_csv


def normalise_labels(df: pd.DataFrame) -> pd.DataFrame:
    """`PASS` stays; every defect label is stripped and lower-cased so one type has one spelling."""
    out = df.copy()
    out["label"] = [lab if lab == GOOD_LABEL else lab.strip().lower() for lab in out["label"]]
    return out


def assemble(
    *,
    previous: Path | None,
    base: pd.DataFrame,
    additions: list[tuple[str, pd.DataFrame]],
    out_csv: Path,
    provenance_csv: Path,
) -> dict[str, Any]:
    """Previous combined CSV (or the base set on the first iteration) + new rows, never base twice.

    Every input row appears in the output once, in order; `provenance_csv` has one aligned row per
    output row naming its source.
    """
    if previous is not None:
        head = read_csv(previous)
        head_source = "previous_iter_train"
    else:
        head = base
        head_source = "base_train"
    parts = [(head_source, head), *additions]
    frames, sources = [], []
    for source, df in parts:
        frames.append(normalise_labels(pad_columns(df))[list(COLUMNS)])
        sources += [source] * len(df)
    combined = pd.concat(frames, ignore_index=True)
    provenance = combined[["input_path", "golden_path", "label", "object_name", "boardname"]].copy()
    provenance.insert(0, "source", sources)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    write_csv(combined, out_csv)
    provenance.to_csv(provenance_csv, index=False, lineterminator="\n")
    counts = {source: int(n) for source, n in pd.Series(sources).value_counts().sort_index().items()}
    return {"rows_in": sum(len(df) for _, df in parts), "rows_out": len(combined), "by_source": counts}


def validate_training_csv(
    csv: Path,
    *,
    images_root: Path,
    lights: list[str],
    image_ext: str,
    against: dict[str, pd.DataFrame],
    expected_rows: int,
    report_path: Path,
) -> dict[str, Any]:
    """Every file exists; no leakage-key overlap with `against`; row count equals `expected_rows`."""
    df = read_csv(csv)
    missing = []
    for i, row in enumerate(df[["input_path", "golden_path", "object_name"]].itertuples(index=False)):
        for rel in (row.input_path, row.golden_path):
            for f in image_files(images_root, rel, row.object_name, lights, image_ext):
                if not f.is_file():
                    missing.append({"line": i + 2, "file": str(f.relative_to(images_root))})
    keys = set(leakage_keys(df))
    leakage = {
        name: int(leakage_keys(other).isin(keys).sum()) for name, other in against.items() if len(other)
    }
    report = {
        "csv": str(csv),
        "rows_checked": len(df),
        "expected_rows": expected_rows,
        "silent_drop": len(df) != expected_rows,
        "missing_file_count": len(missing),
        "missing_files": missing[:50],
        "leakage_overlap": leakage,
        "ok": not missing and not any(leakage.values()) and len(df) == expected_rows,
    }
    atomic_write_json(report_path, report)
    return report
