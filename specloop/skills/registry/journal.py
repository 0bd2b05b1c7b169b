"""The watcher's state, its event log and the pause flag: small files any process may read.

`state.json` is written whole and atomically; `events.jsonl` is append-only; `PAUSED` exists
exactly while the watcher is paused (the dashboard and a user's `touch` both work).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from specloop.ledger.files import append_line, atomic_write_json, atomic_write_text, read_jsonl
from specloop.skills.registry.layout import WatchLayout

STATES = ("idle", "training", "paused", "stopped")
EVENT_TAIL = 50


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def set_paused(ws: Path, paused: bool, reason: str) -> None:
    """Pause (create `results/watch/PAUSED` holding the reason) or resume (remove it)."""
    lay = WatchLayout(ws)
    if paused:
        atomic_write_text(lay.paused_flag, (reason or "paused by hand").strip() + "\n")
    else:
        lay.paused_flag.unlink(missing_ok=True)
    log_event(ws, "paused" if paused else "resumed", reason or ("paused" if paused else "resumed"))


def pause_reason(ws: Path) -> str | None:
    """The pause flag's reason, or None when not paused."""
    flag = WatchLayout(ws).paused_flag
    try:
        return flag.read_text(encoding="utf-8").strip() or "paused"
    except FileNotFoundError:
        return None


def log_event(ws: Path, event: str, message: str, **fields: Any) -> dict[str, Any]:
    entry = {"time": now_iso(), "event": event, "message": message, **fields}
    append_line(WatchLayout(ws).events, json.dumps(entry, default=str))
    return entry


def recent_events(ws: Path, n: int = EVENT_TAIL) -> list[dict[str, Any]]:
    return read_jsonl(WatchLayout(ws).events)[-n:]


def read_state(ws: Path) -> dict[str, Any]:
    path = WatchLayout(ws).state
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_state(ws: Path, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into state.json and write it whole (a reader sees the old or the new)."""
    state = read_state(ws) | changes | {"updated": now_iso()}
    if state.get("state") not in STATES:
        raise ValueError(f"watcher state {state.get('state')!r} is not one of {STATES}")
    atomic_write_json(WatchLayout(ws).state, state)
    return state
