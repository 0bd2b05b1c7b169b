"""A training resumed from an epoch checkpoint ends where the uninterrupted training ends: the same
weights bit for bit and the same validation scores, in-process and after a SIGKILL of the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from specloop.skills.aoi.spec import load_spec
from specloop.skills.changenet.checkpoint import read_checkpoint
from specloop.skills.changenet.train import train

# Small crops and a third of the rows keep an epoch to a few seconds; flips and colour jitter stay
# on, so the augmentation generator is one of the states a resume must carry.
SMALL = ["dataset.classify.image_width=32", "dataset.classify.image_height=32", "train.num_epochs=3"]
SCORES = ("train_loss", "val_loss", "val_auroc", "val_far_at_100_recall", "lr")


@pytest.fixture(scope="module")
def small(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Overrides for SMALL plus training and validation CSVs of every third row of the tiny set's."""
    tmp = tmp_path_factory.mktemp("rows")
    out = list(SMALL)
    for which, name in (("train_dataset", "training_set.csv"), ("validation_dataset", "validation_set.csv")):
        rows = pd.read_csv(tiny_workspace / "train" / "base" / name, dtype=str, keep_default_na=False)
        rows.iloc[::3].to_csv(tmp / name, index=False)
        out += [
            f"dataset.classify.{which}.csv_path={tmp / name}",
            f"dataset.classify.{which}.images_dir={tiny_workspace / 'train' / 'images'}",
        ]
    return out


def _spec(ws: Path, small: list[str], *extra: str):
    return load_spec(ws / "specs" / "baseline_spec.yaml", [*small, *extra])


def _scores(ckpt: Path) -> list[dict[str, object]]:
    return [{k: rec.get(k) for k in SCORES} for rec in read_checkpoint(ckpt)["history"]]


def _same_weights(a: Path, b: Path) -> None:
    sa, sb = read_checkpoint(a)["state_dict"], read_checkpoint(b)["state_dict"]
    assert sa.keys() == sb.keys()
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differ, f"{len(differ)} tensors differ, first {differ[0]}"


@pytest.fixture(scope="module")
def uninterrupted(tiny_workspace: Path, small: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "whole"
    train(_spec(tiny_workspace, small, "train.keep_checkpoints=all"), tiny_workspace, out, progress=False)
    return out


def test_resume_after_epoch_one_ends_bit_identical(
    uninterrupted: Path, tiny_workspace: Path, small: list[str], tmp_path: Path
) -> None:
    first = uninterrupted / "epoch_001.pth"  # exactly what a kill after the first epoch leaves
    assert read_checkpoint(first)["rng"], "the epoch checkpoint carries no generator state"
    out = tmp_path / "resumed"
    result = train(
        _spec(tiny_workspace, small, f"train.resume_training_checkpoint_path={first}"),
        tiny_workspace,
        out,
        progress=False,
    )
    assert result.epochs_run == 2
    _same_weights(out / "latest.pth", uninterrupted / "latest.pth")
    _same_weights(out / "best_val.pth", uninterrupted / "best_val.pth")
    assert _scores(out / "latest.pth") == _scores(uninterrupted / "latest.pth")
    done = json.loads((out / "status.json").read_text())
    whole = json.loads((uninterrupted / "status.json").read_text())
    assert (done["best_epoch"], done["best_metric"]) == (whole["best_epoch"], whole["best_metric"])


def _cli(ws: Path, out: Path, small: list[str], *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "specloop",
        "changenet",
        "train",
        "-e",
        str(ws / "specs" / "baseline_spec.yaml"),
        "-r",
        str(out),
        "-q",
        *small,
        *extra,
    ]


def test_sigkill_after_first_epoch_checkpoint_then_resume(
    uninterrupted: Path, tiny_workspace: Path, small: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(tiny_workspace, out, small),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (out / "epoch_001.pth").is_file():
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    killed_at = read_checkpoint(out / "latest.pth")["epoch"]
    assert killed_at < 3, "the kill came after the last epoch"
    resumed = subprocess.run(
        _cli(tiny_workspace, out, small, f"train.resume_training_checkpoint_path={out / 'latest.pth'}"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout)["epochs_run"] == 3 - killed_at
    _same_weights(out / "latest.pth", uninterrupted / "latest.pth")
    assert _scores(out / "latest.pth") == _scores(uninterrupted / "latest.pth")
    written = json.loads((out / "checkpoints.json").read_text())["checkpoints"]
    assert {e["epoch"] for e in written if e["file"] == "latest.pth"} == {1, 2, 3}  # the killed call's too
