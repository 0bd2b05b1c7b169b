"""The run's canonical snapshot, written atomically: `deft_state.json` for a DEFT run (NVIDIA's v2
key names), `create_state.json` for a create run.

Nodes re-read it before acting and update it through :func:`update`, which re-reads from disk,
applies a change and writes the whole file atomically — never a partial file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from specloop.errors import SpecloopError
from specloop.ledger.files import atomic_write_json, read_json

STATE_FILE = "deft_state.json"
CREATE_STATE_FILE = "create_state.json"
VERSION = 2


def state_path(run_dir: Path) -> Path:
    """The state file of `run_dir`: a create run's when it has one, else a DEFT run's."""
    create = run_dir / CREATE_STATE_FILE
    return create if create.is_file() else run_dir / STATE_FILE


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


# What `deft resume` and `deft status` read from a DEFT state, with the type each must have.
DEFT_KEYS: dict[str, type | tuple[type, ...]] = {
    "status": str,
    "config": dict,
    "iterations": dict,
    "current_iteration": int,
    "max_iterations": int,
    "kpi_target": str,
}


def load(run_dir: Path) -> dict[str, Any]:
    """The state; a file that is not a JSON object is one sentence naming it (SpecloopError)."""
    path = state_path(run_dir)
    try:
        state = read_json(path)
    except json.JSONDecodeError as exc:
        reason = "is empty" if not exc.doc.strip() else f"is not valid JSON (line {exc.lineno}: {exc.msg})"
        raise SpecloopError(f"{path} {reason}; the run's state cannot be read.", rule="state-file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecloopError(f"{path} cannot be read ({exc}).", rule="state-file") from None
    if not isinstance(state, dict):
        raise SpecloopError(
            f"{path} holds a JSON {type(state).__name__}, not the object a run's state is.", rule="state-file"
        )
    return state


def check_deft(run_dir: Path, state: dict[str, Any]) -> None:
    """Raise SpecloopError naming the first key a DEFT state lacks or holds with the wrong type."""
    path = state_path(run_dir)
    for key, kind in DEFT_KEYS.items():
        if not isinstance(state.get(key), kind):
            raise SpecloopError(f"{path}: key {key!r} is missing or malformed.", rule="state-file")
    if not isinstance(state["config"].get("options"), dict):
        raise SpecloopError(f"{path}: key 'config.options' is missing or malformed.", rule="state-file")


def save(run_dir: Path, state: dict[str, Any]) -> None:
    name = CREATE_STATE_FILE if state.get("pipeline") == "create" else STATE_FILE
    atomic_write_json(run_dir / name, state)


def update(run_dir: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    state = load(run_dir)
    change(state)
    save(run_dir, state)
    return state


def iteration(state: dict[str, Any], label: str) -> dict[str, Any]:
    return state["iterations"].setdefault(label, {"status": "in_progress", "stage_completed": None})
