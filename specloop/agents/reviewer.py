"""Reviewer: inference, evaluation with best-of-two checkpoint selection, validation, RCA, and
the done-when checks of every stage."""

from __future__ import annotations

from typing import Any

import pandas as pd

from specloop.agents.base import Agent, StageResult
from specloop.agents.coder import stage_spec
from specloop.agents.planner import Planner
from specloop.errors import HardStop
from specloop.ledger import state as ledger_state
from specloop.ledger.files import atomic_write_json, atomic_write_text, sha256_file
from specloop.ledger.layout import CANDIDATES
from specloop.ledger.transcript import record_hashes
from specloop.pipelines.registry import get_pipeline
from specloop.skills.aoi.assemble import validate_training_csv
from specloop.skills.aoi.pool import to_workspace_paths
from specloop.skills.aoi.schema import read_csv
from specloop.skills.changenet import api as changenet
from specloop.skills.contracts import CheckEnv, Contract, missing_inputs, run_checks
from specloop.skills.rca.gaps import analyze_gaps, explain_gaps


class Reviewer(Agent):
    role = "reviewer"

    def _env(self, label: str) -> CheckEnv:
        values = get_pipeline(self.ctx.pipeline).values(self.ctx.state(), label)
        return CheckEnv(self.ctx.run_dir, values)

    def check_stage(self, contract: Contract, label: str) -> None:
        """Run the stage's done-when checks and its output checks; the first failure is a hard stop
        named by the check's id."""
        results = run_checks(contract, self._env(label))
        for r in results:
            self.record("check", contract.stage, label, check=r.check, name=r.name, ok=r.ok, detail=r.detail)
        failed = [r for r in results if not r.ok]
        if failed:
            raise HardStop(failed[0].check, f"{failed[0].name}: {failed[0].detail}")

    def check_inputs(self, contract: Contract, label: str) -> None:
        """Before a stage acts: every input its contract names is there, else a hard stop naming it."""
        try:
            missing = missing_inputs(contract, self._env(label))
        except ValueError as exc:  # a template variable with no value yet
            raise HardStop("missing-reference", f"stage {contract.stage}: {exc}") from None
        self.record("check", contract.stage, label, check="inputs present", ok=not missing, detail=missing)
        if missing:
            raise HardStop(
                "missing-reference", f"stage {contract.stage} needs {missing[0]}, which is not there"
            )

    def inference(self, label: str) -> StageResult:
        spec = stage_spec(self.ctx, label, "train")
        ws = self.ctx.workspace
        kpi = ws.split("kpi")
        it = self.ctx.layout.iteration(label)
        for name in CANDIDATES:
            self.tool(
                "changenet.infer",
                "inference",
                label,
                changenet.infer,
                spec=spec,
                root=ws.root,
                checkpoint=it.checkpoint(name),
                csv=kpi.csv,
                images_dir=kpi.images_dir,
                out_csv=it.inference_csv(name),
                progress=self.ctx.progress,
            )
        csvs = [it.inference_csv(name) for name in CANDIDATES]
        record_hashes(self.ctx.transcript, self.role, "inference", label, self.ctx.run_dir, csvs)
        return StageResult(f"scored {len(read_csv(kpi.csv))} KPI rows with {' and '.join(CANDIDATES)}")

    def evaluate(self, label: str) -> StageResult:
        """Pick the candidate with the lower KPI FAR (ties keep best_val); score it on the holdout;
        keep it as the run's best model when it beats the best so far."""
        layout = self.ctx.layout
        it = layout.iteration(label)
        metrics = {}
        for name in CANDIDATES:
            metrics[name] = self.tool(
                "changenet.evaluate",
                "evaluate",
                label,
                changenet.evaluate,
                inference_csv=it.inference_csv(name),
                out_dir=it.candidate_eval_dir(name),
                plots=False,
            )
        chosen = min(CANDIDATES, key=lambda n: (metrics[n]["far_at_100_recall"], CANDIDATES.index(n)))
        ckpt = it.checkpoint(chosen)
        kpi_metrics = changenet.evaluate(
            inference_csv=it.inference_csv(chosen), out_dir=it.evaluate_dir / "kpi"
        )
        holdout = self.ctx.workspace.split("holdout")
        holdout_metrics: dict[str, Any] = {}
        if holdout.csv.is_file():
            spec = stage_spec(self.ctx, label, "train")
            changenet.infer(
                spec=spec,
                root=self.ctx.workspace.root,
                checkpoint=ckpt,
                csv=holdout.csv,
                images_dir=holdout.images_dir,
                out_csv=it.holdout_inference_csv,
                progress=self.ctx.progress,
            )
            record_hashes(
                self.ctx.transcript,
                self.role,
                "evaluate",
                label,
                self.ctx.run_dir,
                [it.holdout_inference_csv],
            )
            holdout_metrics = changenet.evaluate(
                inference_csv=it.holdout_inference_csv, out_dir=it.evaluate_dir / "holdout"
            )
        else:
            atomic_write_json(
                it.evaluate_dir / "holdout" / "metrics.json", {"note": "no holdout set in the workspace"}
            )
        selection = {
            "chosen": chosen,
            "rule": "lower KPI FAR@100%recall; ties keep best_val",
            "checkpoint": layout.rel(ckpt),
            "checkpoint_sha256": sha256_file(ckpt),
            "candidates": {
                n: {
                    "far_at_100_recall": metrics[n]["far_at_100_recall"],
                    "threshold_at_100_recall": metrics[n]["threshold_at_100_recall"],
                    "auroc": metrics[n].get("auroc"),
                    "checkpoint": layout.rel(it.checkpoint(n)),
                }
                for n in CANDIDATES
            },
        }
        atomic_write_json(it.selection, selection)
        self.record("decision", "evaluate", label, chosen=chosen, candidates=selection["candidates"])
        record = {
            "chosen": chosen,
            "best_ckpt_path": layout.rel(ckpt),
            "best_ckpt_sha256": selection["checkpoint_sha256"],
            "kpi_far": kpi_metrics["far_at_100_recall"],
            "kpi_threshold": kpi_metrics["threshold_at_100_recall"],
            "kpi_auroc": kpi_metrics.get("auroc"),
            "holdout_far": holdout_metrics.get("far_at_100_recall"),
            "holdout_auroc": holdout_metrics.get("auroc"),
            "candidates": {n: {"kpi_far": metrics[n]["far_at_100_recall"]} for n in CANDIDATES},
        }
        before = self._keep_if_best(label, record)
        far, target = record["kpi_far"], self.ctx.config()["far_target"]
        arrow = f"FAR {before:.1%} → {far:.1%}" if before is not None else f"FAR {far:.1%}"
        return StageResult(f"{arrow} (target < {target:.1%}); chose {chosen}: KPI FAR {far:.2%}", record)

    def _keep_if_best(self, label: str, record: dict[str, Any]) -> float | None:
        """Make this iteration the run's best model when its KPI FAR is lower; the FAR before."""
        st = self.ctx.state()
        best = st.get("best")
        if best is None or record["kpi_far"] < best["kpi_far"]:
            st["best"] = {"iter": label, "checkpoint": record["best_ckpt_path"], "kpi_far": record["kpi_far"]}
            ledger_state.save(self.ctx.run_dir, st)
        return best["kpi_far"] if best else None

    def rca(self, label: str) -> StageResult:
        """Measure the weak samples, explain them, and let the planner decide whether to go on."""
        cfg = self.ctx.config()
        it = self.ctx.layout.iteration(label)
        chosen = ledger_state.iteration(self.ctx.state(), label)["chosen"]
        metrics = self.tool(
            "rca.analyze_gaps",
            "rca",
            label,
            analyze_gaps,
            inference_csv=it.inference_csv(chosen),
            out_dir=it.rca_dir,
            far_target=cfg["far_target"],
            top_k_per_label=cfg["top_k_per_target"],
        )
        explanation = self.draft(
            "rca",
            label,
            task="Explain these RCA findings to an engineer: which boards and defect types hold the "
            "KPI back, and why that blocks the FAR target at 100% recall.",
            facts=metrics,
            offline=explain_gaps(metrics),
            max_words=150,
        )
        atomic_write_text(it.rca_explanation, explanation + "\n")
        decision = Planner(self.ctx).decide(label, metrics)
        summary = f"{metrics['n_selected']} weak target(s) selected; {decision['rationale']}"
        return StageResult(summary, {"rca": metrics, "decision": decision})

    def validate(self, label: str) -> StageResult:
        """Files exist, no leakage against validation/KPI/holdout (raw and workspace paths), no silent
        drop; the valid set becomes the run's training set."""
        ws = self.ctx.workspace
        it = self.ctx.layout.iteration(label)
        expected_rows = ledger_state.iteration(self.ctx.state(), label)["assembled"]["rows_in"]
        spec = stage_spec(self.ctx, label, "train", must_exist=False)
        against: dict[str, pd.DataFrame] = {}
        for name in ("validation", "kpi", "holdout"):
            split = ws.split(name)
            if split.csv.is_file():
                raw = read_csv(split.csv)
                against[name] = pd.concat([raw, to_workspace_paths(raw, ws.rel(split.images_dir))])
        report = self.tool(
            "aoi.validate_training_csv",
            "validate",
            label,
            validate_training_csv,
            csv=it.combined_csv,
            images_root=ws.root,
            lights=spec.lights(),
            image_ext=spec.dataset.classify.image_ext,
            against=against,
            expected_rows=expected_rows,
            report_path=it.merge_validation,
        )
        if report["silent_drop"]:
            raise HardStop(
                "silent-drop", f"assembled {report['rows_checked']} rows but {expected_rows} went in"
            )
        leaks = {k: v for k, v in report["leakage_overlap"].items() if v}
        if leaks:
            raise HardStop("leakage", f"combined training CSV shares rows with {leaks} on the leakage key")
        if report["missing_file_count"]:
            first = report["missing_files"][0]
            raise HardStop(
                "missing-file",
                f"{report['missing_file_count']} image file(s) missing, first {first['file']} (line {first['line']})",
            )
        rel = self.ctx.layout.rel(it.combined_csv)
        ledger_state.update(self.ctx.run_dir, lambda st: st.__setitem__("training_csv", rel))
        return StageResult(f"{report['rows_checked']} rows valid: files present, no leakage, no silent drop")
