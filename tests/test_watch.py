"""The watcher and the model registry end to end on the tiny workspace (test_resnet at 32 px, 1 epoch).

The expensive part, the first champion, is made once (`first_champion`) by `specloop watch --once`;
one decided round on top of it (`after_round`) is shared too. Tests copy them before changing them.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from specloop.ledger.files import read_json, read_jsonl
from specloop.skills.registry import snapshot
from specloop.skills.registry.journal import read_state
from specloop.skills.registry.layout import WatchLayout
from specloop.skills.registry.store import ModelRegistry

FAST = {
    "model.backbone.type": "test_resnet",
    "dataset.classify.image_width": 32,
    "dataset.classify.image_height": 32,
    "dataset.classify.augmentation_config.augment": False,
    "dataset.classify.workers": 0,
    "train.num_epochs": 1,
}
# Permissive resource limits: the test machine's own load must not pause the watcher.
ROUND = [
    "--min-free-gb",
    "0",
    "--max-mem-pct",
    "100",
    "--epochs",
    "1",
    "--min-new-rows",
    "4",
    "--replay",
    "0.5",
]
DEADLINE_S = 600
DECIDED = ("promoted", "rejected")


def specloop(*args: str, timeout: int = DEADLINE_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "specloop", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def append_rows(ws: Path, n: int, tag: str) -> list[str]:
    """What a production line does: new image files first, then their CSV lines, appended."""
    pool = ws / "augmentation" / "mining_pool"
    images = pool / "images"
    with (pool / "mining_pool.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    new_rows = []
    for row in rows:
        new = dict(row, object_name=f"{row['object_name']}_{tag}")
        for side in ("input_path", "golden_path"):
            for light in ("SolderLight", "UniformLight"):
                src = images / row[side] / f"{row['object_name']}_{light}.png"
                shutil.copyfile(src, images / row[side] / f"{new['object_name']}_{light}.png")
        new_rows.append(new)
    with (pool / "mining_pool.csv").open("a", newline="") as fh:
        csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n").writerows(new_rows)
    return [r["object_name"] for r in new_rows]


def copy_ws(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def events(ws: Path) -> list[dict]:
    return read_jsonl(WatchLayout(ws).events)


def agree(ws: Path) -> dict:
    """The registry, best_model.json and snapshot() name the same champion; return it."""
    champ = ModelRegistry(ws).champion()
    assert champ is not None
    best = read_json(ws / "results" / "best_model.json")
    snap = snapshot(ws)
    assert best["version"] == champ["version"] == snap["champion"]["version"]
    assert Path(best["checkpoint"]) == Path(champ["checkpoint"])
    assert best["checkpoint_sha256"] == champ["model_hash"]
    assert [v["version"] for v in snap["versions"]] == [v["version"] for v in ModelRegistry(ws).versions()]
    spec = OmegaConf.load(ws / "results" / "best_model_inference_spec.yaml")
    assert Path(spec.inference.checkpoint) == Path(champ["checkpoint"])
    json.dumps(snap)
    return champ


@pytest.fixture(scope="module")
def fast_ws(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = copy_ws(tiny_workspace, tmp_path_factory.mktemp("watch") / "ws")
    spec = ws / "specs" / "baseline_spec.yaml"
    conf = OmegaConf.load(spec)
    for key, value in FAST.items():
        OmegaConf.update(conf, key, value)
    OmegaConf.save(conf, spec)
    return ws


@pytest.fixture(scope="module")
def first_champion(fast_ws: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`specloop watch --once` on a workspace with no model: trains and registers the first champion."""
    ws = copy_ws(fast_ws, tmp_path_factory.mktemp("first") / "ws")
    proc = specloop("watch", str(ws), "--once", *ROUND)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (ws.parent / "stdout.txt").write_text(proc.stdout)
    return ws


@pytest.fixture(scope="module")
def after_round(first_champion: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """First champion + 6 appended pool rows + one `--once` round decided by the gate."""
    ws = copy_ws(first_champion, tmp_path_factory.mktemp("round") / "ws")
    append_rows(ws, 6, "new1")
    proc = specloop("watch", str(ws), "--once", *ROUND)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (ws.parent / "stdout.txt").write_text(proc.stdout)
    return ws


def test_first_once_registers_the_champion(first_champion: Path) -> None:
    champ = agree(first_champion)
    versions = ModelRegistry(first_champion).versions()
    assert len(versions) == 1 and champ["status"] == "champion"
    assert champ["version"].startswith("v") and champ["version"].split("_")[1] == champ["model_hash"][:4]
    assert all(champ["metrics"][k] is not None for k in ("golden_far", "kpi_far", "holdout_far", "val_far"))
    # The pool's rows at the first look are the starting mark: recorded, not trained on again.
    pool_rows = sum(1 for _ in (first_champion / "augmentation/mining_pool/mining_pool.csv").open()) - 1
    assert snapshot(first_champion)["watcher"]["processed_rows"] == pool_rows
    assert "promoted" in (first_champion.parent / "stdout.txt").read_text()


def test_appended_rows_make_one_gated_round_then_nothing(after_round: Path, tmp_path: Path) -> None:
    decided = [e for e in events(after_round) if e["event"] in ("promoted", "rejected")]
    assert len(decided) == 2  # the first champion, then this round
    last = decided[-1]
    assert "golden FAR@100%R" in last["message"] and "champion" in last["message"]
    versions = ModelRegistry(after_round).versions()
    assert len(versions) == 2
    assert versions[0]["status"] == ("champion" if last["event"] == "promoted" else "rejected")
    round_csv = next((after_round / "results/watch/rounds").glob("*/train_round.csv"))
    names = [r["object_name"] for r in csv.DictReader(round_csv.open())]
    assert sum(n.endswith("_new1") for n in names) == 6 and len(names) > 6  # new rows + replay
    agree(after_round)

    ws = copy_ws(after_round, tmp_path / "ws")
    before = len(events(ws))
    proc = specloop("watch", str(ws), "--once", *ROUND)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no new rows" in proc.stdout
    assert len(ModelRegistry(ws).versions()) == 2
    assert not [e for e in events(ws)[before:] if e["event"].startswith("training")]


def test_models_rollback_restores_the_previous_champion(after_round: Path, tmp_path: Path) -> None:
    ws = copy_ws(after_round, tmp_path / "ws")
    newest, first = ModelRegistry(ws).versions()
    proc = specloop("models", "promote", newest["version"], "-w", str(ws))  # whatever the gate said
    assert proc.returncode == 0, proc.stderr
    assert agree(ws)["version"] == newest["version"]
    proc = specloop("models", "rollback", "-w", str(ws))
    assert proc.returncode == 0, proc.stderr
    assert agree(ws)["version"] == first["version"]
    assert ModelRegistry(ws).get(newest["version"])["status"] == "rolled_back"
    listed = specloop("models", "list", str(ws), "--json")
    assert [v["status"] for v in json.loads(listed.stdout)] == ["rolled_back", "champion"]


def test_nan_round_is_stopped_and_two_worse_rounds_roll_back(after_round: Path, tmp_path: Path) -> None:
    ws = copy_ws(after_round, tmp_path / "ws")
    newest, first = ModelRegistry(ws).versions()
    assert specloop("models", "promote", newest["version"], "-w", str(ws)).returncode == 0
    append_rows(ws, 5, "nan1")
    proc = specloop("watch", str(ws), "--once", *ROUND, "--lr", "1e30")
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed = [e for e in events(ws) if e["event"] == "training_failed"]
    assert len(failed) == 2 and "retrying once at half the rate" in failed[0]["message"]
    assert (
        "non-finite" in failed[1]["message"] and f"champion {newest['version']} kept" in failed[1]["message"]
    )
    assert agree(ws)["version"] == newest["version"]
    assert len(ModelRegistry(ws).versions()) == 2  # nothing registered from a diverged training

    append_rows(ws, 5, "nan2")
    proc = specloop("watch", str(ws), "--once", *ROUND, "--lr", "1e30")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rolled = [e for e in events(ws) if e["event"] == "rolled_back"]
    assert len(rolled) == 1 and first["version"] in rolled[0]["message"]
    assert agree(ws)["version"] == first["version"]
    assert ModelRegistry(ws).get(newest["version"])["status"] == "rolled_back"


def _wait(what: str, cond, proc: subprocess.Popen, deadline_s: float = DEADLINE_S) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if cond():
            return
        assert proc.poll() is None, f"watcher exited {proc.returncode} before {what}"
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_long_running_watch_survives_sigkill_without_losing_or_repeating(
    first_champion: Path, tmp_path: Path
) -> None:
    ws = copy_ws(first_champion, tmp_path / "ws")
    out = (tmp_path / "watch.out").open("w")
    argv = [sys.executable, "-m", "specloop", "watch", str(ws), *ROUND, "--poll", "0.2", "--debounce", "0.5"]

    def start() -> subprocess.Popen:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    proc = start()
    try:
        _wait("the first idle look", lambda: read_state(ws).get("reason") == "no new rows", proc)
        seen = len(events(ws))  # the copied workspace's own events are older
        names = append_rows(ws, 6, "live")
        _wait(
            "the round to start",
            lambda: any(e["event"] == "training_started" for e in events(ws)[seen:]),
            proc,
        )
        rid = read_json(WatchLayout(ws).current_round)["id"]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert WatchLayout(ws).current_round.is_file()  # killed mid-round: the round is on disk
        proc = start()
        _wait(
            "the round to be decided",
            lambda: any(e.get("round") == rid and e["event"] in DECIDED for e in events(ws)),
            proc,
        )
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean stop, however the test was launched
        code = proc.wait(timeout=60)
        out.close()
    assert code == 130 and read_state(ws)["state"] == "stopped"  # SIGTERM stops it like Ctrl-C
    rounds = [p.name for p in (ws / "results/watch/rounds").glob("r*") if not p.name.endswith("_base")]
    assert rounds == [rid]  # one round, finished after the restart, none repeated
    assert len(ModelRegistry(ws).versions()) == 2
    record = read_json(WatchLayout(ws).processed)["rows"]
    pool_rows = sum(1 for _ in (ws / "augmentation/mining_pool/mining_pool.csv").open()) - 1
    assert len(record) == pool_rows  # every row processed once: the 6 new ones by that round
    assert list(record.values()).count(rid) == len(names)
    assert not WatchLayout(ws).current_round.exists()
    assert snapshot(ws)["watcher"]["state"] == "stopped"


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        (["--window", "2am-6am"], "[window]"),
        (["--window", "25:00-06:00"], "[window]"),
        (["--registry", "sqlite:///{blocker}/store.db"], "[registry-store]"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(
    fast_ws: Path, tmp_path: Path, args: list[str], rule: str
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    args = [a.format(blocker=blocker) for a in args]
    proc = specloop("watch", str(fast_ws), "--once", *args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert rule in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (fast_ws / "results").exists()
