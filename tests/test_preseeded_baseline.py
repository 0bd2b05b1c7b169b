"""A baseline handed over in deft_state.json (an AutoML stage's `stage_completed: train` and
`best_ckpt_path`) is not trained again: the loop goes on at inference → evaluate with that model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import set_spec_keys

from specloop.graph import deft
from specloop.graph.run import EXIT_AWAITING, create_run, drive
from specloop.ledger import loop_log
from specloop.ledger.files import sha256_file
from specloop.ledger.transcript import read_entries
from specloop.skills.aoi.spec import load_spec
from specloop.skills.changenet.checkpoint import save_checkpoint
from specloop.skills.changenet.model import build_model

SMALL = {"dataset.classify.image_width": 32, "dataset.classify.image_height": 32}


@pytest.fixture
def ws(ws: Path) -> Path:
    set_spec_keys(ws, SMALL)
    return ws


def _handoff(ws: Path, tmp_path: Path) -> Path:
    """A checkpoint in the trainer's format, as an AutoML stage would leave it (outside the run)."""
    spec = load_spec(ws / "specs" / "baseline_spec.yaml")
    path = tmp_path / "automl" / "best_model.pth"
    path.parent.mkdir(parents=True)
    model = build_model(spec)
    save_checkpoint(
        path, {"state_dict": model.state_dict(), "spec": spec.model_dump(mode="json"), "epoch": 7}
    )
    return path


def _seeded_run(ws: Path, baseline: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    run = create_run(ws, {"max_iterations": 1, "epochs": 1, "progress": False})
    state = json.loads((run / "deft_state.json").read_text())
    state["iterations"]["baseline"] = baseline
    (run / "deft_state.json").write_text(json.dumps(state))
    assert drive(run, yes=False, approver=None).exit_code == EXIT_AWAITING  # pre-flight ran
    graph_state = {"run_dir": str(run), "workspace": str(ws), "options": {"progress": False}, "iteration": 0}
    return run, graph_state


def test_preseeded_baseline_skips_training_and_resumes_at_inference(ws: Path, tmp_path: Path) -> None:
    seed = _handoff(ws, tmp_path)
    run, gs = _seeded_run(ws, {"status": "complete", "stage_completed": "train", "best_ckpt_path": str(seed)})
    for stage in ("train", "inference", "evaluate"):
        assert deft.node(stage)(gs) != {"halt": "hard_stop"}, stage
    train_dir = run / "baseline" / "train"
    assert (
        sha256_file(train_dir / "best_val.pth") == sha256_file(seed) == sha256_file(train_dir / "latest.pth")
    )
    assert not list(train_dir.glob("epoch_*.pth")) and not (train_dir / "train.log").exists()
    status = json.loads((train_dir / "status.json").read_text())
    assert status["preseeded_from"] == str(seed) and status["epoch"] == 7
    log = {e["stage"]: e for e in loop_log.read_entries(run / "loop_log.jsonl") if e["iter"] == "baseline"}
    assert "pre-seeded baseline best_model.pth (epoch 7) adopted; no training" in log["train"]["summary"]
    assert {"inference", "evaluate"} <= set(log)
    state = json.loads((run / "deft_state.json").read_text())
    baseline = state["iterations"]["baseline"]
    assert baseline["preseeded_from"] == str(seed) and baseline["stage_completed"] == "evaluate"
    assert baseline["best_ckpt_path"] == "baseline/train/best_val.pth" and "train_seconds" not in baseline
    assert state["best"]["iter"] == "baseline"
    calls = [
        e["data"].get("tool") for e in read_entries(run / "transcript.jsonl") if e["kind"] == "tool_call"
    ]
    assert "changenet.adopt_checkpoint" in calls and "changenet.train" not in calls


def test_a_handoff_naming_a_missing_checkpoint_is_a_hard_stop(ws: Path, tmp_path: Path) -> None:
    missing = tmp_path / "automl" / "gone.pth"
    run, gs = _seeded_run(
        ws, {"status": "complete", "stage_completed": "train", "best_ckpt_path": str(missing)}
    )
    assert deft.node("train")(gs) == {"halt": "hard_stop"}
    stop = json.loads((run / "deft_state.json").read_text())["stop"]
    assert stop["check"] == "handoff-checkpoint" and str(missing) in stop["detail"]
    assert not (run / "baseline" / "train" / "best_val.pth").exists()
