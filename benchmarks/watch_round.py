"""What a `specloop watch --once` round costs beyond the training itself.

On a synthesized workspace, runs `specloop watch WS --once` for the first champion, then appends
rows to the mining pool and runs `--once` again, `--rounds` times. For each run it prints the wall
time of the command, the training's own time (the `seconds` the training child reports: data
loading and epochs, without its interpreter start) and the difference: the watcher's overhead
(interpreter and imports, the MLflow store, new-data scan, the training child's start, measuring the
candidate on the golden, KPI, holdout and validation sets, registering, the gate).

    .venv/bin/python benchmarks/watch_round.py [--size tiny] [--rounds 2] [--rows 12] [--fast]

`--fast` trains timm's `test_resnet` at 32 px (the test suite's setting); without it, the
workspace's own spec (resnet18 at 64 px). Run it on a quiet machine: every number is wall time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from specloop.skills.aoi.synth import synthesize_workspace

console = Console()
FAST = {
    "model.backbone.type": "test_resnet",
    "dataset.classify.image_width": 32,
    "dataset.classify.image_height": 32,
    "dataset.classify.augmentation_config.augment": False,
}
LIMITS = ["--min-free-gb", "0", "--max-mem-pct", "100"]


def append_rows(ws: Path, n: int, tag: str) -> None:
    """Copies of the first `n` pool rows under new object names (images first, then CSV lines)."""
    pool = ws / "augmentation" / "mining_pool"
    with (pool / "mining_pool.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    new_rows = []
    for row in rows:
        new = dict(row, object_name=f"{row['object_name']}_{tag}")
        for side in ("input_path", "golden_path"):
            for src in (pool / "images" / row[side]).glob(f"{row['object_name']}_*"):
                shutil.copyfile(
                    src, src.with_name(src.name.replace(row["object_name"], new["object_name"], 1))
                )
        new_rows.append(new)
    with (pool / "mining_pool.csv").open("a", newline="") as fh:
        csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n").writerows(new_rows)


def once(ws: Path, args: list[str]) -> tuple[float, float, str]:
    """(wall seconds of `watch --once`, the training's own seconds, outcome)."""
    before = set((ws / "results" / "watch" / "rounds").glob("r*")) if (ws / "results").exists() else set()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "specloop", "watch", str(ws), "--once", *LIMITS, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
    (new_round,) = set((ws / "results" / "watch" / "rounds").glob("r*")) - before
    train = 0.0
    for out in new_round.glob("train*/train.out"):
        text = out.read_text()
        train += float(json.loads(text[text.index("{") : text.rindex("}") + 1])["seconds"])
    outcome = next((w for w in ("promoted", "rejected", "failed") if w in proc.stdout), "?")
    return wall, train, outcome


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rows", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--fast", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        synthesize_workspace(ws, size=a.size, seed=0, progress=False)
        if a.fast:
            spec = ws / "specs" / "baseline_spec.yaml"
            conf = OmegaConf.load(spec)
            for key, value in FAST.items():
                OmegaConf.update(conf, key, value)
            OmegaConf.save(conf, spec)
        epochs = ["--epochs", str(a.epochs), "--baseline-epochs", str(a.epochs), "--min-new-rows", "1"]
        table = Table("run", "new rows", "wall s", "training s", "overhead s", "overhead %", "outcome")
        for i in range(a.rounds + 1):
            if i:
                append_rows(ws, a.rows, f"bench{i}")
            wall, train, outcome = once(ws, epochs)
            name = "first champion" if i == 0 else f"round {i}"
            rows = "—" if i == 0 else str(a.rows)
            over = wall - train
            table.add_row(
                name, rows, f"{wall:.1f}", f"{train:.1f}", f"{over:.1f}", f"{over / wall:.0%}", outcome
            )
        console.print(table)
        console.print(
            f"{a.size} workspace, {a.epochs} epoch(s), {'test_resnet 32 px' if a.fast else 'its own spec'}"
        )


if __name__ == "__main__":
    main()
