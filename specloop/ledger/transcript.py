"""`transcript.jsonl`: every agent action, tool call, check result and the gate decision.

Each entry carries `prev_hash` (the previous entry's `hash`) and its own `hash`, the sha256 of
its canonical JSON without the `hash` field, so an edited, removed or reordered entry breaks
the chain where it happened. Text is redacted of secrets before it is hashed and written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from specloop.ledger.files import append_line, read_jsonl, sha256_file
from specloop.ledger.redaction import redact

GENESIS = "0" * 64
FILE_HASHES = "file_hashes"  # the kind of an entry recording files' sha256 as they were written
TAIL_CHUNK = 1 << 16  # bytes read at a time, from the end, to find the last entry


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read_entries(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path)


def _entry(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return entry if isinstance(entry, dict) else None


def last_link(path: Path) -> tuple[int, str]:
    """The last complete entry's (n, hash), read from the end of the file; (0, GENESIS) when there
    is none. A torn last line (a kill mid-write) is skipped, as `read_entries` skips it."""
    if not path.is_file():
        return 0, GENESIS
    with path.open("rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        carry = b""
        while pos > 0:
            step = min(TAIL_CHUNK, pos)
            pos -= step
            fh.seek(pos)
            lines = (fh.read(step) + carry).split(b"\n")
            carry = lines.pop(0) if pos > 0 else b""  # may start mid-line: complete it next round
            for raw in reversed(lines):
                entry = _entry(raw) if raw.strip() else None
                if entry is not None:
                    return int(entry["n"]), str(entry["hash"])
    return 0, GENESIS


class Transcript:
    """Append-only, hash-chained record of what agents did.

    The last link (n, hash) is read from the file's tail once and then kept, so a record costs
    the same at entry 10 as at entry 10,000. Another writer on the same file (the chat flushes
    through its own context) is noticed by the file's size, and the tail is read again.
    """

    def __init__(self, path: Path, secrets: Iterable[str] = ()) -> None:
        self.path = path
        self.secrets = list(secrets)
        self._link: tuple[int, str] | None = None
        self._size = -1  # the file's size when `_link` was last true

    def _last(self) -> tuple[int, str]:
        size = self.path.stat().st_size if self.path.is_file() else 0
        if self._link is None or size != self._size:
            self._link = last_link(self.path)
        return self._link

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
        self._link, self._size = (entry["n"], entry["hash"]), self.path.stat().st_size
        return entry

    def entries(self) -> list[dict[str, Any]]:
        return read_entries(self.path)


def record_hashes(
    transcript: Transcript, agent: str, stage: str, iter_label: str, run_dir: Path, files: Iterable[Path]
) -> dict[str, Any]:
    """Record the sha256 of each file (named relative to the run directory), so that an edit made
    after the stage wrote it is a named finding of the audit."""
    hashes = {f.resolve().relative_to(run_dir.resolve()).as_posix(): sha256_file(f) for f in files}
    return transcript.record(agent, FILE_HASHES, stage, iter_label, files=hashes)


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
