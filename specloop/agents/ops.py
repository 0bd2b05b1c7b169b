"""Ops: the environment check and, at loop_stop, the hand-over of the best model for inference."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from specloop.agents.base import Agent, StageResult
from specloop.agents.reporter import Reporter
from specloop.ledger import state as ledger_state
from specloop.ledger.files import atomic_write_json, atomic_write_text, sha256_file
from specloop.skills.aoi.spec import ExperimentSpec, load_spec
from specloop.skills.ops.env import probe


class Ops(Agent):
    role = "ops"

    def environment(self, spec: ExperimentSpec) -> dict[str, Any]:
        return probe(spec, self.ctx.run_dir).to_dict()

    def prepare_inference(self) -> dict[str, Any] | None:
        """Write best_model.json and best_model_inference_spec.yaml; None when no model was trained."""
        st = self.ctx.state()
        best = st.get("best")
        if not best:
            return None
        ws = self.ctx.workspace
        it = st["iterations"][best["iter"]]
        layout = self.ctx.layout
        train_spec = layout.iteration(best["iter"]).train_spec
        conf = OmegaConf.load(train_spec)
        kpi = ws.split("kpi")
        out_dir = layout.best_model_inference_dir
        for key, value in {
            "inference.checkpoint": best["checkpoint"],
            "inference.results_dir": str(out_dir),
            "evaluate.checkpoint": best["checkpoint"],
            "dataset.classify.infer_dataset.csv_path": str(kpi.csv),
            "dataset.classify.infer_dataset.images_dir": str(kpi.images_dir),
            "train.pretrained_model_path": None,
            "train.resume_training_checkpoint_path": None,
        }.items():
            OmegaConf.update(conf, key, value, force_add=True)
        spec_path = layout.best_model_spec
        atomic_write_text(spec_path, OmegaConf.to_yaml(conf))
        spec = load_spec(spec_path)
        record = {
            "checkpoint": best["checkpoint"],
            "checkpoint_sha256": sha256_file(self.ctx.run_dir / best["checkpoint"]),
            "iteration": best["iter"],
            "chosen": it["chosen"],
            "threshold": it["kpi_threshold"],
            "kpi_far": it["kpi_far"],
            "holdout_far": it.get("holdout_far"),
            "kpi_target": st["kpi_target"],
            "backbone": spec.model.backbone.type,
            "images_dir": str(kpi.images_dir),
            "spec": spec_path.name,
        }
        atomic_write_json(layout.best_model, record)
        self.record("tool_result", "loop_stop", best["iter"], tool="prepare_inference", result=record)
        return record

    def loop_stop(self, label: str) -> StageResult:
        """End the loop: name why it stopped, hand over the best model, render the final report."""
        record = self.prepare_inference()
        st = self.ctx.state()
        if st.get("stop") is None:
            decided = [it.get("decision") for it in st["iterations"].values() if it.get("decision")]
            st["stop"] = {"reason": decided[-1]["reason"] if decided else "max_iterations"}
        st["status"] = "stopped" if st["stop"]["reason"] == "hard_stop" else "complete"
        ledger_state.save(self.ctx.run_dir, st)
        Reporter(self.ctx).final_report()
        if record is None:
            return StageResult(f"stopped ({st['stop']['reason']}) before any model was trained")
        return StageResult(
            f"stopped ({st['stop']['reason']}); best model from {record['iteration']}, FAR {record['kpi_far']:.2%}"
        )
