"""Checkpoint retention: which epoch files `train.keep_checkpoints` keeps, what checkpoints.json
records of the pruned ones, and the disk use the report shows (hard links counted once)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from specloop.ledger.files import disk_bytes
from specloop.skills.changenet.train import MANIFEST, SoFar, note_written, prune
from specloop.skills.report.run import disk_use


def _epochs(out: Path, so_far: SoFar, n: int, keep: str, interval: int = 1) -> None:
    """What save_epoch does to the folder for n epochs: a new latest.pth, links at the cadence."""
    out.mkdir(parents=True, exist_ok=True)
    for epoch in range(1, n + 1):
        latest = out / "latest.pth"
        tmp = out / ".latest.tmp"
        tmp.write_bytes(bytes([epoch]) * 1000)
        os.replace(tmp, latest)
        names = [latest.name] + ([f"epoch_{epoch:03d}.pth"] if epoch % interval == 0 else [])
        note_written(so_far, out, names, epoch, f"sha{epoch}", 1000)
        for name in names[1:]:
            os.link(latest, out / name)
        prune(out, keep, so_far)


@pytest.mark.parametrize(
    ("keep", "interval", "left"),
    [
        ("best_latest", 1, ["epoch_004.pth", "latest.pth"]),
        ("best_latest", 3, ["epoch_003.pth", "latest.pth"]),  # the newest epoch file, though not the latest
        ("all", 1, ["epoch_001.pth", "epoch_002.pth", "epoch_003.pth", "epoch_004.pth", "latest.pth"]),
    ],
)
def test_prune_keeps_the_newest_epoch_file(tmp_path: Path, keep: str, interval: int, left: list[str]) -> None:
    so_far = SoFar()
    _epochs(tmp_path, so_far, 4, keep, interval)
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == left
    manifest = json.loads((tmp_path / MANIFEST).read_text())["checkpoints"]
    epoch_files = {e["file"] for e in manifest if e["file"].startswith("epoch_")}
    assert {e["file"] for e in manifest if e.get("pruned")} == epoch_files - set(left)


def test_disk_use_counts_a_hard_link_once(tmp_path: Path) -> None:
    run = tmp_path / "run_1"
    train = run / "baseline" / "train"
    so_far = SoFar()
    _epochs(train, so_far, 3, "best_latest")
    os.link(train / "latest.pth", train / "best_val.pth")
    (run / "DEFT_Loop_Report.html").write_text("x" * 5000)
    d = disk_use(run, frozenset({"DEFT_Loop_Report.html"}))
    # latest, epoch_003 and best_val are one file; epoch_001 and epoch_002 were pruned
    assert (d.kept, d.pruned, d.checkpoint_bytes) == (1, 2, 1000)
    assert d.run_bytes == 1000 + (train / MANIFEST).stat().st_size
    assert disk_bytes(run) == d.run_bytes + 5000
