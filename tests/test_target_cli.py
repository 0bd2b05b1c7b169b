"""`specloop target run`'s run directory: refused unless part A finished beside the project; else a
create run of its own whose log marks part A done, resumed while unfinished, renewed once stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specloop.cli.target import PART_A, prepare_target_run
from specloop.errors import SpecloopError
from specloop.ledger import loop_log
from specloop.ledger import state as ledger_state
from specloop.pipelines import get_pipeline


@pytest.fixture
def made(tmp_path: Path) -> Path:
    """A create run's directory as part A leaves it (files only; no code runs here)."""
    run = tmp_path / "out"
    project = run / "proj"
    project.mkdir(parents=True)
    (project / ".specloop-answers.yml").write_text("family: image_classification\n")
    for name in PART_A:
        (run / name).write_text(f"{name}\n")
    state = {
        "pipeline": "create",
        "project_dir": "proj",
        "project_name": "proj",
        "family": "image_classification",
    }
    (run / "create_state.json").write_text(json.dumps({**state, "config": {"requirement": "digits"}}))
    return project


def test_part_a_must_be_finished(made: Path) -> None:
    (made.parent / "REVIEW_REPORT.md").unlink()
    with pytest.raises(SpecloopError, match=r"part A is not finished \(REVIEW_REPORT.md missing\)"):
        prepare_target_run(made, {})
    with pytest.raises(SpecloopError, match="not a project made by `specloop create`"):
        prepare_target_run(made.parent, {})


def test_a_target_run_logs_part_a_and_is_resumed_until_it_stops(made: Path) -> None:
    run = prepare_target_run(made, {"env": "cpu"})
    assert run.parent == made.parent / "proj_target"
    st = ledger_state.load(run)
    assert st["project_dir"] == str(made.resolve()) and st["config"]["options"] == {"env": "cpu"}
    assert all((run / name).is_file() for name in PART_A)
    log = loop_log.read_entries(run / "loop_log.jsonl")
    assert [e["stage"] for e in log] == list(get_pipeline("create").order("framework"))
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert prepare_target_run(made, {}) == run  # unfinished (a kill): resumed
    ledger_state.update(run, lambda s: s.update(stop={"reason": "hard_stop"}, status="stopped"))
    again = prepare_target_run(made, {})
    assert again != run and again.parent == run.parent
