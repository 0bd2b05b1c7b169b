"""The run's canonical snapshot, written atomically: `deft_state.json` for a DEFT run (NVIDIA's v2
key names), `create_state.json` for a create run.

Nodes re-read it before acting and update it through :func:`update`, which re-reads from disk,
applies a change and writes the whole file atomically — never a partial file.

NVIDIA's v2 keys, which their tools and users' scripts read, are derived here on every save of a
DEFT state from specloop's own records and the run layout (:func:`derive_v2`), so no agent writes
them: per iteration `V2_ITERATION_KEYS`, in `config` `V2_CONFIG_KEYS` (the workspace inputs among
them are recorded once at pre-flight, from :func:`v2_inputs`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from specloop.errors import SpecloopError
from specloop.ledger.files import atomic_write_json, read_json
from specloop.ledger.layout import IterationLayout, RunLayout

STATE_FILE = "deft_state.json"
CREATE_STATE_FILE = "create_state.json"
VERSION = 2
MINING_METRIC = "cosine"
V2_ITERATION_KEYS = (
    "far_pct",
    "threshold",
    "best_ckpt_kind",
    "val_loss",
    "inference_csv",
    "rca_target_defects",
    "rca_gaps_parquet",
    "routing_mining_parquet",
    "routing_anomalygen_parquet",
    "stage_completed",
)
V2_INPUT_KEYS = ("training_csv", "validation_csv", "kpi_test_csv", "images_dir", "num_gpus", "batch_size")
V2_CONFIG_KEYS = ("specs_file", *V2_INPUT_KEYS, "num_epochs", "mining_filter")


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


def check_deft(run_dir: Path, state: dict[str, Any], *, resumable: bool = False) -> None:
    """Raise SpecloopError naming the first key a DEFT state lacks or holds with the wrong type.

    Reading a run needs the keys `deft status` shows; resuming one also needs the options it was
    started with (`config.options`), which a state written by another tool may not have."""
    path = state_path(run_dir)
    for key, kind in DEFT_KEYS.items():
        if not isinstance(state.get(key), kind):
            raise SpecloopError(f"{path}: key {key!r} is missing or malformed.", rule="state-file")
    if resumable and not isinstance(state["config"].get("options"), dict):
        raise SpecloopError(f"{path}: key 'config.options' is missing or malformed.", rule="state-file")


def save(run_dir: Path, state: dict[str, Any]) -> None:
    if state.get("pipeline") == "create":
        atomic_write_json(run_dir / CREATE_STATE_FILE, state)
        return
    derive_v2(run_dir, state)
    atomic_write_json(run_dir / STATE_FILE, state)


def v2_inputs(
    *,
    training_csv: Path,
    validation_csv: Path,
    kpi_test_csv: Path,
    images_dir: Path,
    num_gpus: int,
    batch_size: int,
) -> dict[str, Any]:
    """The workspace inputs of NVIDIA's v2 `config`, recorded once at pre-flight."""
    return {
        "training_csv": str(training_csv),
        "validation_csv": str(validation_csv),
        "kpi_test_csv": str(kpi_test_csv),
        "images_dir": str(images_dir),
        "num_gpus": int(num_gpus),
        "batch_size": int(batch_size),
    }


def derive_v2(run_dir: Path, state: dict[str, Any]) -> None:
    """Fill NVIDIA's v2 keys in `state` (in place) from specloop's records and the files on disk."""
    cfg = state.setdefault("config", {})
    cfg["specs_file"] = cfg.get("spec_file")
    for key in V2_INPUT_KEYS:
        cfg.setdefault(key, None)
    cfg["num_epochs"] = cfg.get("baseline_epochs")
    cfg["mining_filter"] = {
        "top_k_per_target": cfg.get("top_k_per_target"),
        "metric": MINING_METRIC,
        "min_similarity": cfg.get("min_similarity"),
    }
    layout = RunLayout(run_dir)
    for label, it in state.get("iterations", {}).items():
        it.update(_iteration_v2(layout, layout.iteration(label), it))


def _iteration_v2(layout: RunLayout, files: IterationLayout, it: dict[str, Any]) -> dict[str, Any]:
    def rel(path: Path) -> str | None:
        return layout.rel(path) if path.is_file() else None

    far = it.get("kpi_far")
    kind = it.get("chosen")
    selected = (it.get("rca") or {}).get("selected_by_label") or {}
    return {
        "far_pct": None if far is None else round(100 * float(far), 6),
        "threshold": it.get("kpi_threshold"),
        "best_ckpt_kind": kind,
        "val_loss": _val_loss(files, kind),
        "inference_csv": rel(files.inference_csv(kind)) if kind else None,
        "rca_target_defects": sorted(k for k, n in selected.items() if n),
        "rca_gaps_parquet": rel(files.kpi_gaps),
        "routing_mining_parquet": rel(files.routing_mining),
        "routing_anomalygen_parquet": rel(files.routing_anomalygen),
        "stage_completed": it.get("stage_completed"),
    }


def _val_loss(files: IterationLayout, kind: str | None) -> float | None:
    """The validation loss of the chosen checkpoint: its best epoch's (best_val) or the last (latest)."""
    status_file = files.train_dir / "status.json"
    if kind is None or not status_file.is_file():
        return None
    try:
        status = read_json(status_file)
    except ValueError:
        return None
    history = [h for h in status.get("history", []) if h.get("val_loss") is not None]
    if not history:
        return None
    if kind == "best_val":
        history = [h for h in history if h.get("epoch") == status.get("best_epoch")] or history[-1:]
    return float(history[-1]["val_loss"])


def update(run_dir: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    state = load(run_dir)
    change(state)
    save(run_dir, state)
    return state


def iteration(state: dict[str, Any], label: str) -> dict[str, Any]:
    return state["iterations"].setdefault(label, {"status": "in_progress", "stage_completed": None})
