"""Every hard stop fires on an input built to trigger it, names its check and reason in the state,
the log and the transcript, and is never retried.

Each test copies a finished tiny run, rewinds its log to just before one stage of iteration 1,
breaks that stage's input, and runs the stage's graph node.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from specloop.graph import deft
from specloop.ledger import loop_log
from specloop.ledger.transcript import read_entries, verify_chain
from specloop.skills.aoi.pool import to_workspace_paths
from specloop.skills.aoi.schema import read_csv, write_csv

Node = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def ws(finished_tiny_run: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(finished_tiny_run, root)
    return root


def _run(ws: Path) -> Path:
    (run,) = sorted((ws / "results").glob("run_*"))
    return run


def _rewind(run: Path, iter_label: str, stage: str) -> None:
    """Forget (iter_label, stage) and everything after it, as if the run had been killed there."""
    lines = (run / "loop_log.jsonl").read_text(encoding="utf-8").splitlines()
    keep = []
    for line in lines:
        if (json.loads(line)["iter"], json.loads(line)["stage"]) == (iter_label, stage):
            break
        keep.append(line)
    (run / "loop_log.jsonl").write_text("\n".join(keep) + "\n", encoding="utf-8")
    state = json.loads((run / "deft_state.json").read_text())
    state.update(status="in_progress", stop=None)
    (run / "deft_state.json").write_text(json.dumps(state), encoding="utf-8")


def _fire(ws: Path, node: Node, stage: str) -> dict[str, Any]:
    """Run `node` for iteration 1 and return the state's stop record after checking the ledger."""
    run = _run(ws)
    graph_state = {"run_dir": str(run), "workspace": str(ws), "options": {"progress": False}, "iteration": 1}
    assert node(graph_state) == {"halt": "hard_stop"}
    stop = json.loads((run / "deft_state.json").read_text())["stop"]
    assert stop["reason"] == "hard_stop" and stop["stage"] == stage and stop["iter"] == "iter1"
    last = loop_log.read_entries(run / "loop_log.jsonl")[-1]
    assert (last["iter"], last["stage"], last["status"]) == ("iter1", stage, "error")
    assert last["summary"] == f"hard stop [{stop['check']}]: {stop['detail']}"
    entries = read_entries(run / "transcript.jsonl")
    assert verify_chain(entries) == []
    assert entries[-1]["kind"] == "hard_stop" and entries[-1]["data"]["check"] == stop["check"]
    # never retried: the node sees the logged stop and does nothing
    before = (run / "loop_log.jsonl").read_text()
    assert node(graph_state) == {"halt": "hard_stop"}
    assert (run / "loop_log.jsonl").read_text() == before
    return stop


def _combined(ws: Path) -> Path:
    return _run(ws) / "iter1" / "dataset" / "train_combined_iter1.csv"


def test_leakage_of_a_kpi_row_into_the_training_set(ws: Path) -> None:
    _rewind(_run(ws), "iter1", "validate")
    kpi_row = to_workspace_paths(read_csv(ws / "kpi" / "testing_set.csv"), "kpi/images").iloc[[0]]
    df = read_csv(_combined(ws))
    write_csv(pd.concat([df.iloc[:-1], kpi_row], ignore_index=True), _combined(ws))
    stop = _fire(ws, deft.node("validate"), "validate")
    assert stop["check"] == "leakage" and "kpi" in stop["detail"]


def test_a_row_lost_on_assembly_is_a_silent_drop(ws: Path) -> None:
    _rewind(_run(ws), "iter1", "validate")
    df = read_csv(_combined(ws))
    write_csv(df.iloc[:-1], _combined(ws))
    stop = _fire(ws, deft.node("validate"), "validate")
    assert stop["check"] == "silent-drop"
    assert f"assembled {len(df) - 1} rows but {len(df)} went in" in stop["detail"]


def test_a_missing_image_names_file_and_line(ws: Path) -> None:
    _rewind(_run(ws), "iter1", "validate")
    df = read_csv(_combined(ws))
    df.loc[3, "input_path"] = "train/images/no_such_board"
    write_csv(df, _combined(ws))
    stop = _fire(ws, deft.node("validate"), "validate")
    assert stop["check"] == "missing-file" and "(line 5)" in stop["detail"]


def test_a_training_csv_that_breaks_the_schema(ws: Path) -> None:
    _rewind(_run(ws), "iter1", "validate")
    df = pd.read_csv(_combined(ws), dtype=str, keep_default_na=False).drop(columns=["label"])
    df.to_csv(_combined(ws), index=False)
    stop = _fire(ws, deft.node("validate"), "validate")
    assert stop["check"] == "csv-schema" and "train_combined_iter1.csv" in stop["detail"]
    assert "label" in stop["detail"]


def test_an_empty_mining_pool(ws: Path) -> None:
    _rewind(_run(ws), "iter1", "data_mining")
    pool_csv = ws / "augmentation" / "mining_pool" / "mining_pool.csv"
    write_csv(read_csv(pool_csv).iloc[0:0], pool_csv)
    stop = _fire(ws, deft.node("data_mining"), "data_mining")
    assert stop["check"] == "empty-mining-pool" and "has no rows" in stop["detail"]


def test_a_missing_reference_file_stops_before_the_stage_acts(ws: Path) -> None:
    run = _run(ws)
    _rewind(run, "iter1", "routing")
    shutil.rmtree(run / "iter1" / "routing_results")
    (run / "baseline" / "rca_results" / "kpi_gaps.parquet").unlink()
    stop = _fire(ws, deft.node("routing"), "routing")
    assert stop["check"] == "missing-reference"
    assert stop["detail"] == "stage routing needs baseline/rca_results/kpi_gaps.parquet, which is not there"
    assert not (run / "iter1" / "routing_results").exists(), "the stage acted despite a missing input"
