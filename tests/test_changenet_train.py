"""ChangeNet training, inference, evaluation and checkpoint selection on the tiny synthetic workspace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from specloop.cli.changenet import app
from specloop.errors import ContractError, SpecloopError
from specloop.skills.aoi.spec import load_spec
from specloop.skills.changenet.api import (
    evaluate,
    infer,
    load_backbone_features,
    load_model,
    select_checkpoint,
    train,
)
from specloop.skills.changenet.checkpoint import read_checkpoint

# Small crops and no augmentation keep each epoch to a few seconds on 2 CPU cores.
FAST = [
    "dataset.classify.image_width=32",
    "dataset.classify.image_height=32",
    "dataset.classify.augmentation_config.augment=false",
]


def _spec(ws: Path, *extra: str):
    return load_spec(ws / "specs" / "baseline_spec.yaml", [*FAST, *extra])


def _steps_taken(ckpt: Path) -> int:
    state = read_checkpoint(ckpt)["optimizer"]["state"]
    return int(next(iter(state.values()))["step"])


@pytest.fixture(scope="module")
def trained(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("cn") / "train"
    result = train(_spec(tiny_workspace, "train.num_epochs=3"), tiny_workspace, out, progress=False)
    return result, out


def test_training_writes_checkpoints_status_and_log(trained) -> None:
    result, out = trained
    assert result.epochs_run == 3 and result.pairs_per_sec > 0 and result.device == "cpu"
    for name in ("epoch_003.pth", "best_val.pth", "latest.pth", "train.log", "checkpoints.json"):
        assert (out / name).is_file(), name
    # train.keep_checkpoints best_latest (the default): older epoch files pruned as the run went
    assert not (out / "epoch_001.pth").exists() and not (out / "epoch_002.pth").exists()
    written = json.loads((out / "checkpoints.json").read_text())["checkpoints"]
    pruned = {e["file"] for e in written if e.get("pruned")}
    assert pruned == {"epoch_001.pth", "epoch_002.pth"}
    assert [e["epoch"] for e in written if e["file"] == "latest.pth"] == [1, 2, 3]
    assert result.checkpoints == written and result.disk_bytes > 0
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "done" and status["epoch"] == 3 and len(status["history"]) == 3
    assert status["val_auroc"] is not None and 0 <= status["val_far_at_100_recall"] <= 1
    ckpt = read_checkpoint(result.latest)
    assert ckpt["epoch"] == 3 and ckpt["backbone"] == "resnet18" and "optimizer" in ckpt
    assert ckpt["spec"]["dataset"]["classify"]["image_width"] == 32
    assert "epoch 3/3" in (out / "train.log").read_text()


def test_model_beats_chance_on_rows_it_did_not_train_on(
    trained, tiny_workspace: Path, tmp_path: Path
) -> None:
    result, _ = trained
    spec = _spec(tiny_workspace)
    csv = tiny_workspace / "train" / "base" / "validation_set.csv"
    out_csv = infer(
        spec, tiny_workspace, result.latest, csv, tiny_workspace / "train" / "images", tmp_path / "i.csv"
    )
    rows = pd.read_csv(out_csv, dtype=str, keep_default_na=False)
    assert len(rows) == len(pd.read_csv(csv)) and "siamese_score" in rows.columns
    assert list(rows["object_name"]) == list(pd.read_csv(csv, dtype=str)["object_name"])
    metrics = evaluate(out_csv, tmp_path / "eval", plots=False)
    assert metrics["auroc"] > 0.8, metrics


def test_checkpoint_alone_gives_model_and_embeddings(trained) -> None:
    result, _ = trained
    model, spec = load_model(result.best_val)
    assert not model.training and spec.dataset.classify.image_width == 32
    feats = load_backbone_features(result.best_val)(torch.randn(3, 3, 64, 32))
    assert feats.shape == (3, 512) and torch.isfinite(feats).all()


def test_pretrained_restarts_counters_resume_continues_them(
    trained, tiny_workspace: Path, tmp_path: Path
) -> None:
    result, _ = trained
    steps_per_epoch = _steps_taken(result.latest) // 3
    src = read_checkpoint(result.latest)["state_dict"]

    resumed = train(
        _spec(tiny_workspace, "train.num_epochs=4", f"train.resume_training_checkpoint_path={result.latest}"),
        tiny_workspace,
        tmp_path / "resume",
        progress=False,
    )
    ck = read_checkpoint(resumed.latest)
    assert resumed.epochs_run == 1 and ck["epoch"] == 4 and len(ck["history"]) == 4
    assert _steps_taken(resumed.latest) == 4 * steps_per_epoch  # optimizer state carried over
    assert (tmp_path / "resume" / "epoch_004.pth").is_file()

    fine = train(
        _spec(
            tiny_workspace,
            "train.num_epochs=1",
            "train.optim.lr=1e-12",
            f"train.pretrained_model_path={result.latest}",
        ),
        tiny_workspace,
        tmp_path / "pretrained",
        progress=False,
    )
    ck = read_checkpoint(fine.latest)
    assert fine.epochs_run == 1 and ck["epoch"] == 1 and len(ck["history"]) == 1
    assert _steps_taken(fine.latest) == steps_per_epoch  # fresh optimizer
    assert any("initialised from" in n for n in fine.notes)
    conv = "backbone.conv1.weight"
    assert torch.allclose(ck["state_dict"][conv], src[conv], atol=1e-6)  # started from those weights


def test_select_checkpoint_keeps_lower_far(trained, tiny_workspace: Path, tmp_path: Path) -> None:
    result, _ = trained
    sel = select_checkpoint(
        _spec(tiny_workspace),
        tiny_workspace,
        {"best_val": result.best_val, "latest": result.latest},
        tiny_workspace / "kpi" / "testing_set.csv",
        tiny_workspace / "kpi" / "images",
        tmp_path / "sel",
        progress=False,
    )
    fars = {n: c["far_at_100_recall"] for n, c in sel["candidates"].items()}
    assert sel["far_at_100_recall"] == min(fars.values())
    if fars["best_val"] == fars["latest"]:
        assert sel["selected"] == "best_val"
    assert json.loads((tmp_path / "sel" / "selection.json").read_text())["selected"] == sel["selected"]
    assert (tmp_path / "sel" / "latest" / "metrics.json").is_file()


def test_cli_evaluate_runs_inference_from_the_spec(trained, tiny_workspace: Path, tmp_path: Path) -> None:
    result, _ = trained
    out = tmp_path / "ev"
    spec_path = str(tiny_workspace / "specs" / "baseline_spec.yaml")
    res = CliRunner().invoke(
        app,
        ["evaluate", "-e", spec_path, *FAST, f"evaluate.checkpoint={result.best_val}", "-r", str(out), "-q"],
    )
    assert res.exit_code == 0, res.output
    assert "far_at_100_recall" in res.output
    for name in (
        "inference.csv",
        "metrics.json",
        "threshold_metrics.csv",
        "missed_defects.csv",
        "false_alarms.csv",
    ):
        assert (out / name).is_file(), name
    assert len(list(out.glob("*.png"))) == 4


def _copy_ws(tiny_workspace: Path, tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace, ws, ignore=shutil.ignore_patterns("results"))
    return ws


def test_missing_image_names_file_line_and_rule(tiny_workspace: Path, tmp_path: Path) -> None:
    ws = _copy_ws(tiny_workspace, tmp_path)
    df = pd.read_csv(ws / "train" / "base" / "training_set.csv", dtype=str)
    row = df.iloc[4]
    victim = ws / "train" / "images" / row["input_path"] / f"{row['object_name']}_UniformLight.png"
    victim.unlink()
    with pytest.raises(ContractError, match=r"training_set.csv, line 6: image .* does not exist\.") as err:
        train(_spec(ws), ws, tmp_path / "out", progress=False)
    assert err.value.rule == "image-missing"
    assert not (tmp_path / "out").exists()


def test_wrong_columns_are_rejected(tiny_workspace: Path, tmp_path: Path) -> None:
    ws = _copy_ws(tiny_workspace, tmp_path)
    csv = ws / "train" / "base" / "training_set.csv"
    pd.read_csv(csv, dtype=str).drop(columns=["golden_path"]).to_csv(csv, index=False)
    with pytest.raises(ContractError, match=r"missing mandatory column\(s\) golden_path"):
        train(_spec(ws), ws, tmp_path / "out", progress=False)


def test_cuda_without_gpu_stops_training(tiny_workspace: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SpecloopError, match="no CUDA GPU"):
        train(_spec(tiny_workspace, "train.device=cuda"), tiny_workspace, tmp_path / "o", progress=False)


def test_cli_bad_backbone_is_one_sentence_and_exit_2(tiny_workspace: Path, tmp_path: Path) -> None:
    spec_path = tiny_workspace / "specs" / "baseline_spec.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "specloop", "changenet", "train", "-e", str(spec_path), "model.backbone.type=resnet_nope",
         "-r", str(tmp_path / "o"), "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "model.backbone.type 'resnet_nope' is not a timm model name" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_train_under_torchrun_two_processes(tiny_workspace: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "specloop", "changenet", "train",
         "-e", str(tiny_workspace / "specs" / "baseline_spec.yaml"), *FAST, "train.num_epochs=1", "-r", str(out), "-q"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = read_checkpoint(out / "latest.pth")
    assert ckpt["epoch"] == 1 and not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert "x2 ranks" in (out / "train.log").read_text()
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "done" and status["val_auroc"] is not None
