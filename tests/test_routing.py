"""Single-bucket routing, the unified source pool it routes to, and the pool's declared allocation."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import specloop_cli

from specloop.errors import HardStop
from specloop.ledger import loop_log
from specloop.skills.aoi.layout import Workspace
from specloop.skills.aoi.pool import declared_allocation, stage_pool
from specloop.skills.routing import route

LIGHTS = ["SolderLight", "UniformLight"]


_cli = specloop_cli


def _drop_pair(root: Path, defect: str) -> str:
    """Delete both sides (every light) of the first declared pair of `defect`; its line stays."""
    ws = Workspace(root)
    lines = [json.loads(line) for line in ws.defect_spec.read_text().splitlines()]
    stem = next(e["stem"] for e in lines if e["defect_type"] == defect)
    for d in (ws.reconstructed_dir, ws.original_dir):
        for light in LIGHTS:
            (d / f"{stem}_{light}.png").unlink()
    return stem


def test_every_selected_gap_goes_to_mining_and_none_to_anomalygen(tmp_path: Path) -> None:
    gaps = pd.DataFrame(
        {
            "object_name": ["a", "b", "c", "d"],
            "label": ["PASS", "bridge", "scratch", "scratch"],
            "weakness": [0.4, 0.2, 0.1, -0.3],
            "selected": [True, True, True, False],
        }
    )
    gaps.to_parquet(tmp_path / "kpi_gaps.parquet", index=False)
    summary = route(tmp_path / "kpi_gaps.parquet", tmp_path / "routing")
    mining = pd.read_parquet(tmp_path / "routing" / "routing_mining.parquet")
    anomalygen = pd.read_parquet(tmp_path / "routing" / "routing_anomalygen.parquet")
    assert mining["object_name"].tolist() == ["a", "b", "c"]  # "scratch" too: no label decides a bucket
    assert anomalygen.empty and list(anomalygen.columns) == list(gaps.columns)
    assert summary == {
        "routing": "single_bucket",
        "targets": 3,
        "to_mining": 3,
        "to_anomalygen": 0,
        "mining_labels": ["PASS", "bridge", "scratch"],
        "by_label": {"PASS": 1, "bridge": 1, "scratch": 1},
    }
    assert json.loads((tmp_path / "routing" / "routing_summary.json").read_text()) == summary


def test_source_pool_holds_both_sources_with_provenance(tiny_workspace: Path, tmp_path: Path) -> None:
    ws = Workspace(tiny_workspace)
    manifest = stage_pool(ws, tmp_path / "synth_pool", lights=LIGHTS, image_ext=".png")
    pool = pd.read_parquet(tmp_path / "synth_pool" / "source_pool.parquet")
    assert pool.equals(
        pd.read_csv(tmp_path / "synth_pool" / "source_pool.csv", dtype=str, keep_default_na=False)
    )
    by_source = pool["source"].value_counts().to_dict()
    assert by_source == {"mining_pool": manifest["mining_pool_rows"], "synthetic": manifest["synthetic_rows"]}
    real = pool[pool["source"] == "mining_pool"]
    synthetic = pool[pool["source"] == "synthetic"]
    # one images root: every path is relative to the workspace and names an existing folder
    assert real["input_path"].str.startswith("augmentation/mining_pool/images/").all()
    assert (synthetic["input_path"] == "augmentation/anomalygen/reconstructed_image").all()
    assert all((tiny_workspace / p).is_dir() for p in pool["input_path"].unique())
    declared = Counter(json.loads(line)["defect_type"] for line in ws.defect_spec.read_text().splitlines())
    assert manifest["synthetic_by_defect_type"] == dict(sorted(declared.items()))
    assert manifest["declared_allocation"] == manifest["synthetic_by_defect_type"]
    assert len(manifest["files"]) == 2 * len(LIGHTS) * manifest["synthetic_rows"]


def test_allocation_mismatch_stops_staging_and_writes_nothing(ws: Path, tmp_path: Path) -> None:
    before = declared_allocation(Workspace(ws))
    _drop_pair(ws, "scratch")
    out = tmp_path / "synth_pool"
    with pytest.raises(HardStop) as info:
        stage_pool(Workspace(ws), out, lights=LIGHTS, image_ext=".png")
    assert info.value.rule == "allocation-mismatch"
    n = before["scratch"]
    assert f"scratch {n - 1} staged vs {n} declared" in info.value.message
    assert "defect_spec.jsonl" in info.value.message and "\n" not in info.value.message
    assert not out.exists()


def test_an_undeclared_pair_is_a_mismatch_too(ws: Path, tmp_path: Path) -> None:
    w = Workspace(ws)
    for d in (w.reconstructed_dir, w.original_dir):
        for light in LIGHTS:
            shutil.copy(next(d.glob(f"*_{light}.png")), d / f"extra_pair_{light}.png")
    with pytest.raises(HardStop, match=r"synthetic_defect 1 staged vs 0 declared"):
        stage_pool(w, tmp_path / "synth_pool", lights=LIGHTS, image_ext=".png")


def test_allocation_mismatch_is_a_hard_stop_at_preflight_never_retried(ws: Path) -> None:
    _drop_pair(ws, "polarity")
    proc = _cli("deft", "run", "--workspace", str(ws), "--yes", "--no-progress")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "allocation mismatch" in proc.stderr and "Traceback" not in proc.stderr
    (run,) = sorted((ws / "results").glob("run_*"))
    state = json.loads((run / "deft_state.json").read_text())
    assert state["stop"]["check"] == "allocation-mismatch" and state["stop"]["stage"] == "preflight"
    assert state["approval"] is None  # no approval was asked
    assert not (run / "synth_pool" / "manifest.json").exists() and not (run / "baseline").exists()
    entries = loop_log.read_entries(run / "loop_log.jsonl")
    assert [(e["stage"], e["status"]) for e in entries] == [("preflight", "error"), ("loop_stop", "ok")]
    again = _cli("deft", "resume", str(run), "--yes")
    assert again.returncode == 2, again.stderr[-2000:]
    assert loop_log.read_entries(run / "loop_log.jsonl") == entries  # nothing re-ran
