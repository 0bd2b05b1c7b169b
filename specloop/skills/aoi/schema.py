"""The 14-column ChangeNet CSV: reading, padding and row-level rules."""

from __future__ import annotations

import unicodedata
from pathlib import Path, PurePosixPath

import pandas as pd

from specloop.errors import ContractError
from specloop.skills.aoi.problems import Problem

COLUMNS: tuple[str, ...] = (
    "input_path",
    "golden_path",
    "label",
    "object_name",
    "project",
    "boardname",
    "comp_type_2",
    "mpass_mfail",
    "is_valid",
    "comp_name",
    "part_type",
    "number_of_pins",
    "description",
    "comp_type_1",
)
MANDATORY: tuple[str, ...] = COLUMNS[:4]
LEAKAGE_KEY: tuple[str, ...] = ("input_path", "golden_path", "label", "object_name", "boardname")
GOOD_LABEL = "PASS"

# Labels that read as "no value" to a person but would become a defect type here.
MISSING_LIKE = frozenset({"nan", "none", "null", "n/a", "na", "-", "?"})

# Data rows start on line 2 of a CSV file (line 1 is the header).
FIRST_DATA_LINE = 2


def read_csv(path: Path, *, display: str | None = None) -> pd.DataFrame:
    """Read a ChangeNet CSV as strings, optional columns padded empty, extra columns kept.

    Raises ContractError when the file is missing, unreadable or lacks a mandatory column.
    """
    name = display or str(path)
    if not path.is_file():
        raise ContractError(f"{name}: file not found.")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ContractError(f"{name}: not a readable CSV file ({reason}).", rule="csv-format") from None
    missing = [c for c in MANDATORY if c not in df.columns]
    if missing:
        raise ContractError(
            f"{name}: missing mandatory column(s) {', '.join(missing)}; a ChangeNet CSV needs "
            f"{', '.join(MANDATORY)}.",
            rule="csv-schema",
        )
    return pad_columns(df)


def pad_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Return `df` with all 14 contract columns first (absent ones empty), extra columns after."""
    out = df.copy()
    for col in COLUMNS:
        if col not in out.columns:
            out[col] = ""
    extras = [c for c in out.columns if c not in COLUMNS]
    return out[list(COLUMNS) + extras]


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a contract CSV deterministically (fixed column order, no index, LF line endings)."""
    pad_columns(df).to_csv(path, index=False, lineterminator="\n")


def is_defect(label: str) -> bool:
    return label != GOOD_LABEL


def check_rows(df: pd.DataFrame, file: str) -> list[Problem]:
    """Row rules: mandatory values present, label rule, path rule (relative, no `..` escape)."""
    problems: list[Problem] = []
    for idx, row in enumerate(df[list(MANDATORY)].itertuples(index=False)):
        line = idx + FIRST_DATA_LINE
        values = dict(zip(MANDATORY, row, strict=True))
        for col in MANDATORY:
            if not values[col].strip():
                problems.append(Problem(file, "empty-value", f"column {col} is empty", line=line))
        label = values["label"]
        if label != GOOD_LABEL and label.strip().upper() == GOOD_LABEL:
            problems.append(
                Problem(
                    file,
                    "label-pass-case",
                    f"label {label!r} must be exactly 'PASS' (any other spelling would be read as a "
                    "defect type)",
                    line=line,
                )
            )
        elif label != GOOD_LABEL and (warning := label_lookalike(label)):
            problems.append(Problem(file, "label-lookalike", warning, "warning", line=line))
        for col in ("input_path", "golden_path"):
            reason = unsafe_relative_path(values[col])
            if reason:
                problems.append(Problem(file, "path-outside-workspace", f"{col} {reason}", line=line))
    return problems


def _latin_skeleton(text: str) -> str:
    """Each letter as the Latin capital it looks like (Cyrillic А, Greek Α → A), by its Unicode name."""
    out = []
    for ch in unicodedata.normalize("NFKC", text):
        name = unicodedata.name(ch, "")
        letter = name.rsplit(" ", 1)[-1] if " LETTER " in name else ch
        out.append(letter if len(letter) == 1 else ch)
    return "".join(out).upper()


def label_lookalike(label: str) -> str | None:
    """Why a defect label is probably a mistake (looks like PASS, or like a missing value), else None."""
    if label.strip().lower() in MISSING_LIKE:
        return f"label {label!r} looks like a missing value but is read as a defect type"
    if not label.isascii() and _latin_skeleton(label.strip()) == GOOD_LABEL:
        odd = ", ".join(f"U+{ord(ch):04X} {unicodedata.name(ch, '?')}" for ch in label if not ch.isascii())
        return f"label {label!r} looks like PASS but contains {odd}, so it is read as a defect type"
    return None


def unsafe_relative_path(value: str) -> str | None:
    """Why `value` is not a safe workspace-relative path, or None when it is."""
    if not value:
        return None
    if value.startswith(("/", "\\")) or (len(value) > 1 and value[1] == ":"):
        return f"{value!r} is absolute; paths must be relative to the images directory"
    depth = 0
    for part in PurePosixPath(value.replace("\\", "/")).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return f"{value!r} climbs out of the images directory with '..'"
        elif part not in (".", ""):
            depth += 1
    return None


def leakage_keys(df: pd.DataFrame) -> pd.Series:
    """One hashable key per row: the contract's leakage tuple joined by a separator.

    Joined column by column: a row-by-row join takes about 0.1 s per thousand rows, too slow
    for the audit, which keys every training set of a long run."""
    cols = [df[c].astype(str) for c in LEAKAGE_KEY]
    return cols[0].str.cat(cols[1:], sep="\x1f").rename(None)
