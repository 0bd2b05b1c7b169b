"""Warnings before and after mining: labels the pool cannot answer, and a collapsing yield."""

from __future__ import annotations

import pandas as pd


def label_precheck(targets: pd.DataFrame, pool: pd.DataFrame, *, filter_by_label: bool = False) -> list[str]:
    """One warning per target label that no pool row carries (no same-label candidate exists)."""
    available = set(pool["label"])
    outcome = (
        "it gets no neighbours (filter_by_label is on)"
        if filter_by_label
        else "neighbours found for it will carry other labels"
    )
    warnings = []
    for label, count in targets["label"].value_counts(sort=False).sort_index().items():
        if label not in available:
            warnings.append(
                f"target label {label!r} ({count} target(s)) has no same-label candidates in the pool; "
                f"{outcome}."
            )
    return warnings


def yield_check(kept: int, previous_kept: int | None) -> list[str]:
    """A warning when this call kept less than half of what the previous call kept."""
    if previous_kept is None or previous_kept <= 0 or kept * 2 >= previous_kept:
        return []
    return [
        f"mining yield fell from {previous_kept} to {kept} kept rows (more than half); the pool may be "
        "exhausted around these targets or the similarity threshold is too strict."
    ]
