"""`loop_log.jsonl`: exactly one line per finished stage, `seq` = last on disk + 1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from specloop.ledger.files import append_line, read_jsonl


def read_entries(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path)


def find(path: Path, iter_label: str, stage: str) -> dict[str, Any] | None:
    for entry in read_entries(path):
        if entry.get("iter") == iter_label and entry.get("stage") == stage:
            return entry
    return None


def append(
    path: Path,
    *,
    iter_label: str,
    stage: str,
    status: str,
    summary: str,
    duration_sec: float,
    tokens: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append a stage line unless that (iter, stage) is already logged; return the line on disk."""
    existing = find(path, iter_label, stage)
    if existing is not None:
        return existing
    entries = read_entries(path)
    entry = {
        "seq": (entries[-1]["seq"] + 1) if entries else 1,
        "ts": datetime.now(UTC).isoformat(timespec="seconds"),
        "iter": iter_label,
        "stage": stage,
        "status": status,
        "summary": summary,
        "duration_sec": round(duration_sec, 2),
        "tokens": tokens or {"input": 0, "output": 0, "cost_usd": 0.0, "calls": 0},
    }
    _repair_torn_tail(path)
    append_line(path, json.dumps(entry, sort_keys=False))
    return entry


def _repair_torn_tail(path: Path) -> None:
    """Drop a partial last line left by a kill, so the next append starts on a fresh line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n")
        path.write_bytes(data[: cut + 1] if cut >= 0 else b"")
