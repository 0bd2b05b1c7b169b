"""Pre-flight proves the plan before the gate: the model builds (meta device), the image size suits
its backbone, checkpoints will be written, the weights file loads, the device exists and, on a GPU,
the batch fits. Each failure is one sentence; none needs training."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest
import timm
import torch
from test_bad_inputs import APPROVAL_QUESTION, _cli, _hashes, _no_half_written_run

from specloop.skills.aoi.spec import load_spec
from specloop.skills.changenet.preflight import check_plan, joined_size

SPEC = "specs/baseline_spec.yaml"
SQUARE_GRID = [
    "dataset.classify.concat_type=grid",
    "dataset.classify.grid_map={x: 2, y: 1}",
    "dataset.classify.image_width=112",
    "dataset.classify.image_height=224",
]
VIT = "model.backbone.type=vit_tiny_patch16_224"


def _plan(root: Path, *overrides: str, epochs: tuple[int, ...] | None = None) -> list:
    spec = load_spec(root / SPEC, list(overrides))
    return [p for p in check_plan(spec, root, SPEC, epochs=epochs) if p.severity == "error"]


@pytest.mark.parametrize(
    ("overrides", "rule", "says"),
    [
        (["model.backbone.type=resnet_18"], "unknown-backbone", "'resnet_18' is not a timm model name"),
        (["dataset.classify.image_width=60"], "image-size", "image_width 60 must be a multiple of 32"),
        ([VIT], "image-size", "needs a square input but the joined lights make 64x128 px"),
        (["train.checkpoint_interval=9"], "checkpoint-interval", "checkpoint_interval 9 is more than the 5"),
        (["model.backbone.pretrained_backbone_path=no/such.pth"], "backbone-weights", "does not exist"),
        (["model.backbone.pretrained_backbone_path=specs"], "backbone-weights", "is a folder"),
        (["model.backbone.pretrained_backbone_path=specs/baseline_spec.yaml"], "backbone", "from "),
    ],
    ids=[
        "backbone",
        "multiple-of-32",
        "vit-not-square",
        "interval",
        "weights-missing",
        "weights-dir",
        "not-weights",
    ],
)
def test_a_plan_that_cannot_train_is_one_sentence(
    overrides: list[str], rule: str, says: str, tiny_workspace: Path
) -> None:
    (problem,) = _plan(tiny_workspace, *overrides)
    assert problem.rule == rule and says in problem.sentence(), problem.sentence()


def test_a_vit_whose_lights_tile_a_square_builds(tiny_workspace: Path) -> None:
    spec = load_spec(tiny_workspace / SPEC, [VIT, *SQUARE_GRID])
    assert joined_size(spec) == (224, 224)
    assert _plan(tiny_workspace, VIT, *SQUARE_GRID) == []


def test_the_interval_is_checked_against_the_epochs_the_run_trains(tiny_workspace: Path) -> None:
    (problem,) = _plan(tiny_workspace, "train.checkpoint_interval=2", epochs=(4, 1))
    assert "more than the 1 epoch(s)" in problem.message


def test_a_real_weights_file_loads(tiny_workspace: Path, tmp_path: Path) -> None:
    weights = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), weights)
    assert _plan(tiny_workspace, f"model.backbone.pretrained_backbone_path={weights}") == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_a_cuda_device_on_a_machine_without_one(tiny_workspace: Path) -> None:
    (problem,) = _plan(tiny_workspace, "train.device=cuda")
    assert problem.rule == "device" and "has no CUDA device" in problem.message
    spec = load_spec(tiny_workspace / SPEC)
    notes = [p for p in check_plan(spec, tiny_workspace, SPEC) if p.rule == "batch-memory"]
    assert [p.severity for p in notes] == ["note"]  # not measured on a CPU, and said so


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_batch_too_large_for_the_gpu(tiny_workspace: Path) -> None:
    assert _plan(tiny_workspace, "train.device=cuda", "dataset.classify.batch_size=4") == []
    total = torch.cuda.mem_get_info()[1]
    batch = int(total / (3 * 64 * 128 * 4) * 4)  # its input tensor alone is 4x the GPU's memory
    (problem,) = _plan(tiny_workspace, "train.device=cuda", f"dataset.classify.batch_size={batch}")
    assert problem.rule == "batch-memory" and "does not fit" in problem.message


# --- through `deft run`: refused before the gate ----------------------------------------------------


def test_deft_run_with_a_bad_backbone_leaves_no_run_directory(
    ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = ws / SPEC
    spec.write_text(spec.read_text().replace("type: resnet18", "type: resnet_18"))
    code, output = _cli(monkeypatch, capsys, "deft", "run", "-w", str(ws), "--no-progress")
    assert code == 2 and output.count("'resnet_18' is not a timm model name") == 1, output
    assert not (ws / "results").exists()


def test_epochs_shorter_than_the_checkpoint_interval_stop_at_preflight(
    ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = ws / SPEC
    spec.write_text(spec.read_text().replace("checkpoint_interval: 1", "checkpoint_interval: 3"))
    before = _hashes(ws)
    code, output = _cli(monkeypatch, capsys, "deft", "run", "-w", str(ws), "--no-progress", "--epochs", "2")
    assert code == 2, output
    assert output.count("[checkpoint-interval]") == 1 and APPROVAL_QUESTION not in output
    _no_half_written_run(ws)
    assert _hashes(ws) == before


def test_a_missing_synthetic_pool_is_a_hard_stop_unless_declined(
    ws: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(ws / "augmentation" / "anomalygen")
    before = _hashes(ws)
    code, output = _cli(monkeypatch, capsys, "deft", "run", "-w", str(ws), "--no-progress")
    assert code == 2, output
    assert output.count("[synthetic-pool-missing]") == 1 and "--no-synthetic-pool" in output  # printed once
    assert APPROVAL_QUESTION not in output
    _no_half_written_run(ws)
    (stopped,) = (ws / "results").glob("run_*")
    assert json.loads((stopped / "deft_state.json").read_text())["stop"]["check"] == "synthetic-pool-missing"

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, output = _cli(
        monkeypatch, capsys, "deft", "run", "-w", str(ws), "--no-progress", "--no-synthetic-pool"
    )
    assert code == 4, output  # pre-flight passed; waiting at the gate, nothing approved
    assert "Synthetic pool: 0 pre-generated pairs" in output
    assert _hashes(ws) == before
