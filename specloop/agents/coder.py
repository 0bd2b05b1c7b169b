"""Coder: derives each training stage's spec from the workspace spec and trains ChangeNet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from specloop.agents.base import Agent, StageResult
from specloop.agents.context import RunContext
from specloop.ledger.files import sha256_file
from specloop.skills.aoi.spec import ExperimentSpec, load_spec
from specloop.skills.changenet import api as changenet
from specloop.skills.changenet.handoff import adopt_checkpoint, handoff_checkpoint

SPEC_NAME = "spec.yaml"


def stage_spec(ctx: RunContext, iter_label: str, stage: str, *, must_exist: bool = True) -> ExperimentSpec:
    path = ctx.layout.iteration(iter_label).root / stage / SPEC_NAME
    if not path.is_file() and not must_exist:
        return load_spec(ctx.workspace.spec)
    return load_spec(path)


def write_stage_spec(ctx: RunContext, iter_label: str, overrides: dict[str, Any]) -> Path:
    """The workspace spec with this stage's data paths and starts, saved under `{iter}/train/`.

    Paths are absolute so the file runs as is with `specloop changenet train -e`.
    """
    conf = OmegaConf.load(ctx.workspace.spec)
    for key, value in overrides.items():
        OmegaConf.update(conf, key, value, force_add=True)
    path = ctx.layout.iteration(iter_label).train_spec
    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(conf, path)
    return path


class Coder(Agent):
    role = "coder"

    def train(self, iter_label: str) -> StageResult:
        ctx = self.ctx
        ws = ctx.workspace
        state = ctx.state()
        cfg = state["config"]
        it = ctx.layout.iteration(iter_label)
        out_dir = it.train_dir
        val = ws.split("validation")
        kpi = ws.split("kpi")
        overrides: dict[str, Any] = {
            "results_dir": str(ctx.run_dir),
            "train.results_dir": str(out_dir),
            "dataset.classify.validation_dataset.csv_path": str(val.csv),
            "dataset.classify.validation_dataset.images_dir": str(val.images_dir),
            "dataset.classify.test_dataset.csv_path": str(kpi.csv),
            "dataset.classify.test_dataset.images_dir": str(kpi.images_dir),
            "train.resume_training_checkpoint_path": None,
        }
        if iter_label == "baseline":
            train = ws.split("training")
            overrides |= {
                "dataset.classify.train_dataset.csv_path": str(train.csv),
                "dataset.classify.train_dataset.images_dir": str(train.images_dir),
                "train.num_epochs": cfg["baseline_epochs"],
            }
        else:
            overrides |= {
                "dataset.classify.train_dataset.csv_path": str(it.combined_csv),
                "dataset.classify.train_dataset.images_dir": str(ws.root),
                "train.num_epochs": cfg["finetune_epochs"],
                "train.pretrained_model_path": str(ctx.run_dir / state["best"]["checkpoint"]),
                "train.optim.lr": cfg["finetune_lr"],
            }
        baseline = state["iterations"].get("baseline", {})
        seeded = handoff_checkpoint(baseline, ctx.run_dir) if iter_label == "baseline" else None
        if seeded is not None:  # handed over by an earlier stage (AutoML): train no baseline
            write_stage_spec(ctx, iter_label, overrides)
            status = self.tool(
                "changenet.adopt_checkpoint",
                "train",
                iter_label,
                adopt_checkpoint,
                checkpoint=seeded,
                out_dir=out_dir,
            )
            self.record("handoff", "train", iter_label, checkpoint=str(seeded), sha256=sha256_file(seeded))
            summary = f"pre-seeded baseline {seeded.name} (epoch {status['epoch']}) adopted; no training"
            return StageResult(summary, {"preseeded_from": str(seeded), "seed_sha256": sha256_file(seeded)})
        latest = it.checkpoint("latest")
        if latest.is_file():
            # A kill during this stage left epoch checkpoints: continue instead of starting over.
            overrides["train.resume_training_checkpoint_path"] = str(latest)
            self.record("resume", "train", iter_label, checkpoint=str(latest))
        spec_path = write_stage_spec(ctx, iter_label, overrides)
        spec = load_spec(spec_path)
        if spec.train.num_gpus > 1:  # one process per device, launched on the stage's spec file
            result = self.tool(
                "changenet.train_under_torchrun",
                "train",
                iter_label,
                changenet.train_under_torchrun,
                spec_path=spec_path,
                out_dir=out_dir,
                nproc=spec.train.num_gpus,
                progress=ctx.progress,
            )
        else:
            result = self.tool(
                "changenet.train",
                "train",
                iter_label,
                changenet.train,
                spec=spec,
                root=ws.root,
                out_dir=out_dir,
                progress=ctx.progress,
            )
        summary = (
            f"{result.epochs_run} epoch(s) on {spec.model.backbone.type} in {result.seconds:.0f}s "
            f"({result.pairs_per_sec:.0f} pairs/s, {result.device})"
        )
        # every checkpoint written, kept or pruned, with its sha256: a later edit is an audit finding
        self.record(
            "checkpoints", "train", iter_label, files=result.checkpoints, disk_bytes=result.disk_bytes
        )
        return StageResult(
            summary,
            {
                "train_seconds": result.seconds,
                "pairs_per_sec": result.pairs_per_sec,
                "train_disk_bytes": result.disk_bytes,
            },
        )
