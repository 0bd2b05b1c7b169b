"""`train.num_gpus: 2` makes the loop's train stage launch torchrun with 2 processes (gloo on the CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import set_spec_keys
from omegaconf import OmegaConf

from specloop.errors import SpecloopError
from specloop.graph import deft
from specloop.graph.run import EXIT_AWAITING, create_run, drive
from specloop.ledger import loop_log
from specloop.ledger.transcript import read_entries
from specloop.skills.changenet.checkpoint import read_checkpoint
from specloop.skills.changenet.launch import torchrun_argv, train_under_torchrun

SPEC = {
    "train.num_gpus": 2,
    "train.device": "cpu",
    "dataset.classify.image_width": 32,
    "dataset.classify.image_height": 32,
    "dataset.classify.augmentation_config.augment": False,
}


@pytest.fixture
def ws(ws: Path) -> Path:
    set_spec_keys(ws, SPEC)
    return ws


def test_torchrun_command_line() -> None:
    argv = torchrun_argv(3, "changenet", "train")
    assert argv[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3", "-m"]
    assert argv[6:] == ["specloop", "changenet", "train"]


def test_loop_trains_under_torchrun_with_two_processes(ws: Path) -> None:
    run = create_run(ws, {"max_iterations": 1, "epochs": 1, "progress": False})
    assert drive(run, yes=False, approver=None).exit_code == EXIT_AWAITING  # pre-flight ran
    graph_state = {"run_dir": str(run), "workspace": str(ws), "options": {"progress": False}, "iteration": 0}
    assert deft.node("train")(graph_state) != {"halt": "hard_stop"}
    train_dir = run / "baseline" / "train"
    assert "x2 ranks" in (train_dir / "train.log").read_text()
    ckpt = read_checkpoint(train_dir / "latest.pth")
    assert ckpt["epoch"] == 1 and not any(k.startswith("module.") for k in ckpt["state_dict"])
    (entry,) = [e for e in loop_log.read_entries(run / "loop_log.jsonl") if e["stage"] == "train"]
    assert entry["status"] == "ok" and "1 epoch(s)" in entry["summary"]
    calls = [
        e["data"].get("tool") for e in read_entries(run / "transcript.jsonl") if e["kind"] == "tool_call"
    ]
    assert "changenet.train_under_torchrun" in calls and "changenet.train" not in calls
    state = json.loads((run / "deft_state.json").read_text())
    assert state["iterations"]["baseline"]["train_seconds"] > 0


def test_a_failing_rank_is_one_sentence(ws: Path, tmp_path: Path) -> None:
    spec_path = ws / "specs" / "bad.yaml"  # relative data paths resolve against the workspace
    conf = OmegaConf.load(ws / "specs" / "baseline_spec.yaml")
    OmegaConf.update(conf, "model.backbone.type", "resnet_nope")
    OmegaConf.save(conf, spec_path)
    with pytest.raises(
        SpecloopError, match=r"failed with exit code \d+: .*'resnet_nope' is not a timm model"
    ) as e:
        train_under_torchrun(spec_path, tmp_path / "out", 2, progress=False)
    assert e.value.rule == "torchrun" and "\n" not in str(e.value)
