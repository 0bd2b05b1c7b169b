"""A spec shaped like NVIDIA's DEFT template (C-RADIO v2 backbone, learnable head, TAO's augmentation
and launcher keys) runs the loop on the tiny workspace; a FAN backbone stops at pre-flight; one
synthesized spec runs train → evaluate → inference with TAO's launcher defaults."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specloop.cli.changenet import app
from specloop.graph import deft
from specloop.graph.run import EXIT_AWAITING, create_run, drive
from specloop.ledger import loop_log
from specloop.skills.aoi.schema import read_csv, write_csv
from specloop.skills.aoi.spec import load_spec

SPLITS = (
    "train/base/training_set.csv",
    "train/base/validation_set.csv",
    "kpi/testing_set.csv",
    "kpi/holdout_set.csv",
)

# NVIDIA's template with its data paths pointed at the workspace, `image_ext` and `input_map` matched
# to the data (one of its two lights, as the template uses one) and 32 px crops instead of 224 so a
# CPU trains it in a minute.
TEMPLATE = """\
encryption_key: tlt_encode
task: classify
results_dir: results
train:
  num_epochs: 10
  num_nodes: 1
  num_gpus: 1
  validation_interval: 1
  checkpoint_interval: 1
  pretrained_model_path: null
  resume_training_checkpoint_path: null
  results_dir: ${{results_dir}}/train
  classify:
    loss: ce
    cls_weight: [1.0, 10.0]
  optim:
    optim: adamw
    policy: linear
    lr: 0.0001
    momentum: 0.9
    weight_decay: 0.01
  tensorboard:
    enabled: false
model:
  backbone:
    type: {backbone}
    pretrained_backbone_path: null
    freeze_backbone: false
  decode_head:
    use_summary_token: true
  classify:
    train_margin_euclid: 2.0
    eval_margin: 0.005
    embedding_vectors: 5
    embed_dec: 30
    difference_module: learnable
    learnable_difference_modules: 4
dataset:
  classify:
    train_dataset: {{csv_path: train/base/training_set.csv, images_dir: train/images}}
    validation_dataset: {{csv_path: train/base/validation_set.csv, images_dir: train/images}}
    test_dataset: {{csv_path: kpi/testing_set.csv, images_dir: kpi/images}}
    infer_dataset: {{csv_path: "", images_dir: ""}}
    batch_size: 16
    workers: 2
    fpratio_sampling: 0.2
    num_input: 1
    input_map: {{SolderLight: 0}}
    concat_type: linear
    image_width: 32
    image_height: 32
    image_ext: .png
    grid_map: {{x: 2, y: 2}}
    num_classes: 2
    augmentation_config:
      augment: true
      rgb_input_mean: [0.485, 0.456, 0.406]
      rgb_input_std: [0.229, 0.224, 0.225]
      random_flip: {{enable: true, vflip_probability: 0.5, hflip_probability: 0.5}}
      random_rotate: {{enable: true, rotate_probability: 0.5, angle_list: [90, 180, 270]}}
      random_color: {{enable: true, brightness: 0.3, contrast: 0.3, saturation: 0.3, hue: 0.3}}
      with_scale_random_crop: {{enable: true}}
      with_random_crop: true
      with_random_blur: true
evaluate:
  batch_size: 16
inference:
  batch_size: 16
export:
  onnx_file: ${{results_dir}}/export/changenet.onnx
"""


def _workspace(tiny_workspace: Path, tmp_path: Path, backbone: str) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace, ws)
    (ws / "specs" / "baseline_spec.yaml").write_text(TEMPLATE.format(backbone=backbone), encoding="utf-8")
    return ws


def _deft_run(ws: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = ["deft", "run", "--workspace", str(ws), "--yes", "--json", "--no-progress", *extra]
    return subprocess.run(
        [sys.executable, "-m", "specloop", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        timeout=900,
        check=False,
    )


def test_template_spec_loads_with_tao_keys_noted(tmp_path: Path) -> None:
    from specloop.skills.aoi.spec import load_spec_with_problems

    path = tmp_path / "baseline_spec.yaml"
    path.write_text(TEMPLATE.format(backbone="c_radio_v2_vit_base_patch16_224"), encoding="utf-8")
    spec, problems = load_spec_with_problems(path)
    assert spec is not None and [p for p in problems if p.severity == "error"] == []
    assert spec.model.backbone.type == "c_radio_v2_vit_base_patch16_224"
    assert spec.evaluate.checkpoint == "results/train/best_val.pth"


def _trim(ws: Path, per_label: int) -> None:
    """Keep `per_label` rows of each label in the scored and trained sets: a ViT-B on a shared CPU."""
    for rel in SPLITS:
        df = read_csv(ws / rel)
        write_csv(df.groupby("label", sort=False).head(per_label), ws / rel)


def test_nvidia_template_with_c_radio_passes_preflight_and_trains(
    tiny_workspace: Path, tmp_path: Path
) -> None:
    ws = _workspace(tiny_workspace, tmp_path, "c_radio_v2_vit_base_patch16_224")
    _trim(ws, 3)
    run = create_run(ws, {"max_iterations": 1, "epochs": 1, "progress": False})
    assert drive(run, yes=False, approver=None).exit_code == EXIT_AWAITING  # pre-flight passed, gate waits
    graph_state = {"run_dir": str(run), "workspace": str(ws), "options": {"progress": False}, "iteration": 0}
    for stage in ("train", "inference", "evaluate"):  # the loop's baseline iteration, stage by stage
        assert deft.node(stage)(graph_state) != {"halt": "hard_stop"}, stage
    log = {e["stage"]: e for e in loop_log.read_entries(run / "loop_log.jsonl")}
    assert {"preflight", "train", "inference", "evaluate"} <= set(log)
    assert all(e["status"] == "ok" for e in log.values())
    assert "1 epoch(s) on c_radio_v2_vit_base_patch16_224" in log["train"]["summary"]
    status = json.loads((run / "baseline" / "train" / "status.json").read_text())
    assert status["state"] == "done" and status["epoch"] == 1
    metrics = json.loads((run / "baseline" / "evaluate" / "kpi" / "metrics.json").read_text())
    assert 0.0 <= metrics["far_at_100_recall"] <= 1.0 and metrics["n_rows"] == len(read_csv(ws / SPLITS[2]))


def test_template_with_fan_stops_at_preflight_in_one_sentence(tiny_workspace: Path, tmp_path: Path) -> None:
    ws = _workspace(tiny_workspace, tmp_path, "fan_small_12_p4_hybrid")
    proc = _deft_run(ws)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "approve" not in proc.stderr.lower()
    assert "'fan_small_12_p4_hybrid' is a TAO FAN backbone" in proc.stderr
    assert "use 'c_radio_v2_vit_base_patch16_224'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not list((ws / "results").glob("run_*/baseline/train"))


FAST = ["dataset.classify.image_width=32", "dataset.classify.image_height=32"]


def test_one_synthesized_spec_runs_train_evaluate_inference(tiny_workspace: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace, ws)
    spec = str(ws / "specs" / "baseline_spec.yaml")
    runner = CliRunner()
    early = runner.invoke(app, ["evaluate", "-e", spec, *FAST, "-q"])
    assert early.exit_code != 0 and "train first" in str(early.exception or early.output)
    for argv in (["train", "train.num_epochs=1"], ["evaluate", "--no-plots"], ["infer"]):
        res = runner.invoke(app, [argv[0], "-e", spec, *FAST, *argv[1:], "-q"])
        assert res.exit_code == 0, res.output
    results = ws / "results"
    assert (results / "train" / "best_val.pth").is_file()
    assert json.loads((results / "evaluate" / "metrics.json").read_text())["n_rows"] > 0
    assert (results / "inference" / "inference.csv").read_text().count("\n") > 1


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], "runs/x/train/best_val.pth"),
        (["train.results_dir=elsewhere/t"], "elsewhere/t/best_val.pth"),
        (["evaluate.checkpoint=mine.pth"], "mine.pth"),
    ],
)
def test_unset_checkpoints_default_under_train_results(
    tmp_path: Path, extra: list[str], expected: str
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("results_dir: runs/x\ntrain:\n  num_epochs: 1\n", encoding="utf-8")
    spec = load_spec(path, extra)
    assert spec.evaluate.checkpoint == expected
    assert spec.inference.checkpoint == expected.replace("mine.pth", "runs/x/train/best_val.pth")
