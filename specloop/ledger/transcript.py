"""`transcript.jsonl`: every agent action, tool call, check result and the gate decision.

Each entry carries `prev_hash` (the previous entry's `hash`) and its own `hash`, the sha256 of
its canonical JSON without the `hash` field, so an edited, removed or reordered entry breaks
the chain where it happened. Text is redacted of secrets before it is hashed and written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from specloop.ledger.files import append_line, read_jsonl
from specloop.ledger.redaction import redact

GENESIS = "0" * 64


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read_entries(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path)


class Transcript:
    """Append-only, hash-chained record of what agents did."""

    def __init__(self, path: Path, secrets: Iterable[str] = ()) -> None:
        self.path = path
        self.secrets = list(secrets)

    def _last(self) -> tuple[int, str]:
        entries = read_entries(self.path)
        if not entries:
            return 0, GENESIS
        return int(entries[-1]["n"]), str(entries[-1]["hash"])

    def record(self, agent: str, kind: str, stage: str, iter_label: str, **data: Any) -> dict[str, Any]:
        n, prev = self._last()
        payload = json.loads(redact(json.dumps(data, default=str), self.secrets))
        entry: dict[str, Any] = {
            "n": n + 1,
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "agent": agent,
            "kind": kind,
            "iter": iter_label,
            "stage": stage,
            "data": payload,
            "prev_hash": prev,
        }
        entry["hash"] = entry_hash(entry)
        append_line(self.path, json.dumps(entry, ensure_ascii=False))
        return entry

    def entries(self) -> list[dict[str, Any]]:
        return read_entries(self.path)


def verify_chain(entries: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(line number, what is wrong) for every break in the chain; empty when intact."""
    problems = []
    prev = GENESIS
    for line, entry in enumerate(entries, start=1):
        if entry.get("prev_hash") != prev:
            problems.append(
                (line, "prev_hash does not match the previous entry (removed or reordered entry)")
            )
        if entry.get("hash") != entry_hash(entry):
            problems.append((line, "content does not match its hash (edited entry)"))
        prev = str(entry.get("hash"))
    return problems
