"""NVIDIA's v2 keys in deft_state.json: present on a finished run, and equal to the records they come from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from specloop.ledger.layout import RunLayout
from specloop.ledger.state import V2_CONFIG_KEYS, V2_ITERATION_KEYS
from specloop.skills.aoi.layout import Workspace


def _state(ws: Path) -> tuple[Path, dict]:
    (run,) = sorted((ws / "results").glob("run_*"))
    return run, json.loads((run / "deft_state.json").read_text())


def test_finished_run_carries_the_v2_keys(finished_tiny_run: Path) -> None:
    run, state = _state(finished_tiny_run)
    layout = RunLayout(run)
    ws = Workspace(finished_tiny_run)
    cfg = state["config"]
    assert set(V2_CONFIG_KEYS) <= set(cfg)
    assert Path(cfg["specs_file"]) == ws.spec
    assert Path(cfg["training_csv"]) == ws.split("training").csv
    assert Path(cfg["validation_csv"]) == ws.split("validation").csv
    assert Path(cfg["kpi_test_csv"]) == ws.split("kpi").csv
    assert Path(cfg["images_dir"]) == ws.split("training").images_dir
    assert (cfg["num_gpus"], cfg["batch_size"], cfg["num_epochs"]) == (1, 32, 2)  # the run passed --epochs 2
    assert cfg["mining_filter"] == {"top_k_per_target": 5, "metric": "cosine", "min_similarity": 0.9}
    assert state["iterations"], "no iteration recorded"
    for label, it in state["iterations"].items():
        files = layout.iteration(label)
        assert set(V2_ITERATION_KEYS) <= set(it), label
        assert it["far_pct"] == pytest.approx(100 * it["kpi_far"])
        assert it["threshold"] == it["kpi_threshold"]
        assert it["best_ckpt_kind"] == it["chosen"] and it["chosen"] in ("best_val", "latest")
        assert it["inference_csv"] == layout.rel(files.inference_csv(it["chosen"]))
        assert (run / it["inference_csv"]).is_file()
        status = json.loads((files.train_dir / "status.json").read_text())
        epochs = {h["epoch"]: h["val_loss"] for h in status["history"]}
        want = (
            epochs[status["best_epoch"]] if it["chosen"] == "best_val" else status["history"][-1]["val_loss"]
        )
        assert it["val_loss"] == pytest.approx(want)
        selected = it["rca"]["selected_by_label"]
        assert it["rca_target_defects"] == sorted(k for k, n in selected.items() if n)
        assert it["rca_gaps_parquet"] == layout.rel(files.kpi_gaps)
        assert it["stage_completed"] == "rca"
        if label == "baseline":
            assert it["routing_mining_parquet"] is None and it["routing_anomalygen_parquet"] is None
        else:
            assert it["routing_mining_parquet"] == layout.rel(files.routing_mining)
            assert it["routing_anomalygen_parquet"] == layout.rel(files.routing_anomalygen)


def _preflight_only(ws: Path) -> dict:
    """Run to the gate (no --yes, no terminal: exit 4 after pre-flight) and return the state."""
    proc = subprocess.run(
        [sys.executable, "-m", "specloop", "deft", "run", "--workspace", str(ws), "--no-progress"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 4, proc.stderr[-2000:]
    return _state(ws)[1]


def test_epochs_default_to_the_spec_then_20_and_staged_pairs_are_counted_per_type(
    tiny_workspace: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace, ws)
    spec = yaml.safe_load(Workspace(ws).spec.read_text())
    state = _preflight_only(ws)
    assert state["config"]["num_epochs"] == spec["train"]["num_epochs"]
    declared = Counter(
        json.loads(line)["defect_type"] for line in Workspace(ws).defect_spec.read_text().splitlines()
    )
    pool = state["source_pool"]
    assert pool["synthetic_by_defect_type"] == dict(sorted(declared.items())) == pool["declared_allocation"]
    assert pool["synthetic_pairs"] == sum(declared.values())

    del spec["train"]["num_epochs"]
    Workspace(ws).spec.write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.rmtree(ws / "results")
    assert _preflight_only(ws)["config"]["num_epochs"] == 20
