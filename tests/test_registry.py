"""The registry's deterministic parts: the gate, quality checks, new-data detection, the time window,
the watcher's journal and snapshot(). No training and no MLflow store here (test_watch.py has both)."""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from specloop.errors import SpecloopError
from specloop.skills.registry import feed, quality, set_paused, snapshot
from specloop.skills.registry.gate import GateRule, decide
from specloop.skills.registry.journal import log_event, write_state
from specloop.skills.registry.layout import WatchLayout
from specloop.skills.registry.limits import Limits, parse_window

LIGHTS = ["SolderLight", "UniformLight"]


@pytest.mark.parametrize(
    ("cand", "champ", "promote", "words"),
    [
        ({"golden_far": 0.20, "val_far": 0.1}, None, True, "first model"),
        ({"golden_far": 0.20, "val_far": 0.1}, {"golden_far": 0.25, "val_far": 0.1}, True, "+20.0% relative"),
        (
            {"golden_far": 0.248, "val_far": 0.1},
            {"golden_far": 0.25, "val_far": 0.1},
            False,
            "needs at least 1% lower",
        ),
        (
            {"golden_far": 0.20, "val_far": 0.3},
            {"golden_far": 0.25, "val_far": 0.1},
            False,
            "validation FAR 30.00%",
        ),
        (
            {"golden_far": 0.30, "val_far": 0.1},
            {"golden_far": 0.25, "val_far": 0.1},
            False,
            "-20.0% relative",
        ),
        ({"golden_far": 0.0, "val_far": 0.0}, {"golden_far": 0.0, "val_far": 0.0}, False, "needs at least"),
    ],
)
def test_gate_decides_with_its_numbers(cand: dict, champ: dict | None, promote: bool, words: str) -> None:
    d = decide(cand, champ, GateRule())
    assert d.promote is promote
    assert words in d.reason


def test_gate_margin_is_configurable() -> None:
    cand, champ = {"golden_far": 0.24, "val_far": 0.1}, {"golden_far": 0.25, "val_far": 0.1}
    assert decide(cand, champ, GateRule(margin=0.01)).promote
    assert not decide(cand, champ, GateRule(margin=0.05)).promote
    worse_val = {"golden_far": 0.1, "val_far": 0.2}
    assert decide(worse_val, champ, GateRule(require_val=False)).promote


def _hist(losses: list[float], vals: list[float] | None = None) -> list[dict]:
    return [
        {"epoch": i + 1, "train_loss": loss, **({"val_loss": vals[i]} if vals else {})}
        for i, loss in enumerate(losses)
    ]


def test_quality_checks_on_a_history() -> None:
    assert quality.non_finite_epoch(_hist([0.5, 0.4])) is None
    assert quality.non_finite_epoch(_hist([0.5, math.nan, 0.3])) == 2
    assert quality.non_finite_epoch(_hist([0.5, 0.4], [0.6, math.inf])) == 2
    rising = quality.warnings(_hist([0.5, 0.45, 0.44, 0.43, 0.42], [0.5, 0.4, 0.45, 0.5, 0.55]))
    assert rising == ["validation loss rose 3 evaluations in a row (to 0.5500 at epoch 5)"]
    assert quality.warnings(_hist([0.5, 0.45, 0.44], [0.5, 0.55, 0.6])) == []  # two rises only
    osc = quality.warnings(_hist([0.4, 0.1, 0.12]))
    assert len(osc) == 1 and osc[0].startswith("oscillation: training loss changed 75% in epoch 2")


def test_worse_rounds_count_only_from_the_current_champion() -> None:
    rounds = [
        {"outcome": "promoted", "worse": False, "champion": "v0"},
        {"outcome": "rejected", "worse": True, "champion": "v0"},
        {"outcome": "failed", "worse": True, "champion": "v1"},
        {"outcome": "skipped", "worse": False},
        {"outcome": "rejected", "worse": True, "champion": "v1"},
    ]
    assert quality.worse_streak(rounds, "v1") == 2
    assert quality.worse_streak(rounds, "v0") == 0
    assert (
        quality.worse_streak([*rounds, {"outcome": "rejected", "worse": False, "champion": "v1"}], "v1") == 0
    )


def test_plateau_and_which_versions_go_on_low_disk() -> None:
    flat = [{"outcome": "rejected", "improvement": 0.001}] * 3
    assert quality.plateau(flat, 0.01)
    assert not quality.plateau([*flat[:2], {"outcome": "promoted", "improvement": 0.2}], 0.01)
    assert not quality.plateau(flat[:2], 0.01)
    versions = [
        {"version": f"v{i}", "status": "champion" if i == 0 else "rejected", "metrics": {"golden_far": far}}
        for i, far in enumerate([0.9, 0.1, 0.5, 0.2, 0.3, None])
    ]
    assert quality.versions_to_prune(versions) == ["v2", "v5"]  # champion kept, then the best three


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [("02:00-06:00", "03:15", "06:00"), ("22:00-02:00", "23:30", "12:00"), ("22:00-02:00", "01:59", "02:00")],
)
def test_window_parses_and_may_cross_midnight(text: str, inside: str, outside: str) -> None:
    w = parse_window(text)
    assert w is not None and str(w) == text
    day = "2026-01-01 "
    assert w.contains(datetime.fromisoformat(day + inside))
    assert not w.contains(datetime.fromisoformat(day + outside))


@pytest.mark.parametrize(
    "text", ["2-6", "02:00", "02:00-24:00", "02:00-02:00", "02:00 - 06:00x", "ab:cd-ef:gh"]
)
def test_a_window_that_does_not_parse_names_the_rule(text: str) -> None:
    with pytest.raises(SpecloopError) as err:
        parse_window(text)
    assert err.value.rule == "window" and text in str(err.value)


def test_resource_limits_say_why(tmp_path: Path) -> None:
    assert Limits(max_mem_pct=100.0, min_free_gb=0.0).pressure(tmp_path) is None
    assert "memory in use" in (Limits(max_mem_pct=0.0, min_free_gb=0.0).pressure(tmp_path) or "")
    assert "free disk" in (Limits(max_mem_pct=100.0, min_free_gb=1e9).pressure(tmp_path) or "")


@pytest.fixture
def pool_ws(tiny_workspace: Path, tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace / "augmentation" / "mining_pool", ws / "augmentation" / "mining_pool")
    return ws


def _pool(ws: Path) -> Path:
    return ws / "augmentation" / "mining_pool" / "mining_pool.csv"


def test_feed_finds_rows_by_content_and_keeps_what_was_processed(pool_ws: Path) -> None:
    first = feed.scan_pool(pool_ws, LIGHTS, ".png")
    n = sum(1 for _ in _pool(pool_ws).open()) - 1
    assert len(first.ready) == n and first.waiting == 0 and first.processed == []
    assert feed.mark_processed(pool_ws, [r.key for r in first.ready[:10]], "r1", first.mark) == 10
    again = feed.scan_pool(pool_ws, LIGHTS, ".png")
    assert len(again.ready) == n - 10 and len(again.processed) == 10
    assert feed.same_mark(again.mark, feed.read_record(pool_ws)["mark"])

    # The same rows re-ordered are not new; a changed image makes its row new.
    lines = _pool(pool_ws).read_text().splitlines(keepends=True)
    _pool(pool_ws).write_text(lines[0] + "".join(reversed(lines[1:])))
    assert {r.key for r in feed.scan_pool(pool_ws, LIGHTS, ".png").ready} == {r.key for r in again.ready}
    row = first.ready[0].values
    img = (
        pool_ws
        / "augmentation/mining_pool/images"
        / row["input_path"]
        / f"{row['object_name']}_SolderLight.png"
    )
    img.write_bytes(img.read_bytes() + b"\0")
    assert len(feed.scan_pool(pool_ws, LIGHTS, ".png").ready) == n - 10 + 1


def test_feed_leaves_torn_lines_and_missing_images_for_later(pool_ws: Path) -> None:
    base = feed.scan_pool(pool_ws, LIGHTS, ".png")
    feed.mark_processed(pool_ws, [r.key for r in base.ready], "r0", base.mark)
    with _pool(pool_ws).open(newline="") as fh:
        row = next(csv.DictReader(fh))
    new = dict(row, object_name="fresh_1")
    with _pool(pool_ws).open("a", newline="") as fh:
        csv.DictWriter(fh, fieldnames=list(row), lineterminator="\n").writerow(new)
        fh.write("test/line1_green,golden/line1_green/U7")  # a writer mid-append
    scan = feed.scan_pool(pool_ws, LIGHTS, ".png")
    assert scan.ready == [] and scan.waiting == 1  # its images are not there yet
    images = pool_ws / "augmentation/mining_pool/images"
    for side in ("input_path", "golden_path"):
        for light in LIGHTS:
            shutil.copyfile(
                images / row[side] / f"{row['object_name']}_{light}.png",
                images / row[side] / f"fresh_1_{light}.png",
            )
    scan = feed.scan_pool(pool_ws, LIGHTS, ".png")
    assert [r.values["object_name"] for r in scan.ready] == ["fresh_1"] and scan.waiting == 0


def test_snapshot_without_a_store_and_the_pause_file(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    snap = snapshot(ws)
    assert snap["champion"] is None and snap["versions"] == [] and snap["events"] == []
    assert snap["watcher"] == {
        "state": "stopped",
        "paused": False,
        "reason": "",
        "last_round": None,
        "processed_rows": 0,
    }
    assert set(snap["resources"]) == {"mem_pct", "disk_free_gb"}
    assert not WatchLayout(ws).store.exists()  # reading never creates a store

    write_state(ws, state="idle", reason="no new rows", processed_rows=7, pid=os.getpid())
    set_paused(ws, True, "maintenance on line 3")
    assert WatchLayout(ws).paused_flag.is_file()
    watcher = snapshot(ws)["watcher"]
    assert watcher["paused"] and watcher["state"] == "paused" and watcher["reason"] == "maintenance on line 3"
    set_paused(ws, False, "maintenance done")
    assert not WatchLayout(ws).paused_flag.exists()
    watcher = snapshot(ws)["watcher"]
    assert watcher == {
        "state": "idle",
        "paused": False,
        "reason": "no new rows",
        "last_round": None,
        "processed_rows": 7,
    }
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    write_state(ws, state="training", reason="round r1", pid=int(dead.stdout))
    assert snapshot(ws)["watcher"]["state"] == "stopped"  # a killed watcher's last state is not shown as live
    for i in range(60):
        log_event(ws, "new_data", f"event {i}")
    events = snapshot(ws)["events"]
    assert (
        len(events) == 50
        and events[-1]["message"] == "event 59"
        and set(events[0]) == {"time", "event", "message"}
    )
