"""Requests a person makes to a running loop, kept as small files in the run directory.

`stop_request.json` asks the planner to end the loop at its next stop decision (after the
current iteration's RCA) instead of starting another iteration. The planner reads it; whoever
asked (the chat, for now) writes it. A file, not graph state: it must reach a graph that is
already running in another thread or process.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from specloop.ledger.files import atomic_write_json, read_json

STOP_REQUEST = "stop_request.json"


def request_stop(run_dir: Path, *, by: str) -> dict[str, Any]:
    """Ask the loop in `run_dir` to stop after its current iteration; returns the request."""
    request = {"by": by, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    atomic_write_json(run_dir / STOP_REQUEST, request)
    return request


def stop_request(run_dir: Path) -> dict[str, Any] | None:
    """The pending stop request of `run_dir`, or None."""
    path = run_dir / STOP_REQUEST
    return read_json(path) if path.is_file() else None
