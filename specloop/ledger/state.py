"""`deft_state.json`: the run's canonical snapshot (NVIDIA's v2 key names), written atomically.

Nodes re-read it before acting and update it through :func:`update`, which re-reads from disk,
applies a change and writes the whole file atomically — never a partial file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from specloop.ledger.files import atomic_write_json, read_json

STATE_FILE = "deft_state.json"
VERSION = 2


def state_path(run_dir: Path) -> Path:
    return run_dir / STATE_FILE


def new_state(
    *, run_dir: Path, workspace: Path, kpi_target: str, max_iterations: int, config: dict[str, Any]
) -> dict[str, Any]:
    return {
        "version": VERSION,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "pending",
        "kpi_target": kpi_target,
        "results_dir": str(run_dir),
        "workspace": str(workspace),
        "max_iterations": max_iterations,
        "current_iteration": 0,
        "config": config,
        "approval": None,
        "iterations": {},
        "stop": None,
    }


def load(run_dir: Path) -> dict[str, Any]:
    return read_json(state_path(run_dir))


def save(run_dir: Path, state: dict[str, Any]) -> None:
    atomic_write_json(state_path(run_dir), state)


def update(run_dir: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    state = load(run_dir)
    change(state)
    save(run_dir, state)
    return state


def iteration(state: dict[str, Any], label: str) -> dict[str, Any]:
    return state["iterations"].setdefault(label, {"status": "in_progress", "stage_completed": None})
