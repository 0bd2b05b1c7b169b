"""Reviewer: inference, evaluation with best-of-two checkpoint selection, validation, RCA, and
the done-when checks of every stage."""

from __future__ import annotations

from typing import Any

import pandas as pd

from specloop.agents.base import Agent, contracts
from specloop.agents.coder import stage_spec
from specloop.errors import HardStop
from specloop.ledger import state as ledger_state
from specloop.ledger.files import atomic_write_json, atomic_write_text, sha256_file
from specloop.skills.aoi.assemble import validate_training_csv
from specloop.skills.aoi.pool import to_workspace_paths
from specloop.skills.aoi.schema import read_csv
from specloop.skills.changenet import api as changenet
from specloop.skills.contracts import missing_inputs, run_checks
from specloop.skills.rca.gaps import analyze_gaps, explain_gaps

CANDIDATES = ("best_val", "latest")


class Reviewer(Agent):
    role = "reviewer"

    def check_stage(self, stage: str, iter_label: str, extra: dict[str, str] | None = None) -> None:
        """Run the stage's done-when checks; the first failure is a hard stop naming it."""
        contract = contracts().get(stage)
        if contract is None:
            raise HardStop("missing-reference", f"no contract for stage {stage!r} in the shipped specs")
        results = run_checks(contract, self.ctx.run_dir, {"iter": iter_label, **(extra or {})})
        for r in results:
            self.record("check", stage, iter_label, check=r.check, ok=r.ok, detail=r.detail)
        failed = [r for r in results if not r.ok]
        if failed:
            raise HardStop(failed[0].check, failed[0].detail)

    def check_inputs(self, stage: str, iter_label: str, extra: dict[str, str] | None = None) -> None:
        """Before a stage acts: every input its contract names is there, else a hard stop naming it."""
        contract = contracts().get(stage)
        if contract is None:
            return
        missing = missing_inputs(
            contract, self.ctx.run_dir, self.ctx.workspace.root, {"iter": iter_label, **(extra or {})}
        )
        self.record("check", stage, iter_label, check="inputs present", ok=not missing, detail=missing)
        if missing:
            raise HardStop("missing-reference", f"stage {stage} needs {missing[0]}, which is not there")

    def inference(self, iter_label: str) -> str:
        spec = stage_spec(self.ctx, iter_label, "train")
        ws = self.ctx.workspace
        kpi = ws.split("kpi")
        out = self.ctx.iter_dir(iter_label) / "inference" / "kpi"
        for name in CANDIDATES:
            ckpt = self.ctx.iter_dir(iter_label) / "train" / f"{name}.pth"
            self.tool(
                "changenet.infer",
                "inference",
                iter_label,
                changenet.infer,
                spec=spec,
                root=ws.root,
                checkpoint=ckpt,
                csv=kpi.csv,
                images_dir=kpi.images_dir,
                out_csv=out / name / "inference.csv",
                progress=self.ctx.progress,
            )
        return f"scored {len(read_csv(kpi.csv))} KPI rows with {' and '.join(CANDIDATES)}"

    def evaluate(self, iter_label: str) -> tuple[str, dict[str, Any]]:
        """Pick the candidate with the lower KPI FAR (ties keep best_val); score it on the holdout."""
        it_dir = self.ctx.iter_dir(iter_label)
        ev_dir = it_dir / "evaluate"
        metrics = {}
        for name in CANDIDATES:
            metrics[name] = self.tool(
                "changenet.evaluate",
                "evaluate",
                iter_label,
                changenet.evaluate,
                inference_csv=it_dir / "inference" / "kpi" / name / "inference.csv",
                out_dir=ev_dir / "candidates" / name,
                plots=False,
            )
        chosen = min(CANDIDATES, key=lambda n: (metrics[n]["far_at_100_recall"], CANDIDATES.index(n)))
        ckpt = it_dir / "train" / f"{chosen}.pth"
        kpi_metrics = changenet.evaluate(
            inference_csv=it_dir / "inference" / "kpi" / chosen / "inference.csv", out_dir=ev_dir / "kpi"
        )
        holdout = self.ctx.workspace.split("holdout")
        holdout_metrics: dict[str, Any] = {}
        if holdout.csv.is_file():
            spec = stage_spec(self.ctx, iter_label, "train")
            hold_csv = it_dir / "inference" / "holdout" / "inference.csv"
            changenet.infer(
                spec=spec,
                root=self.ctx.workspace.root,
                checkpoint=ckpt,
                csv=holdout.csv,
                images_dir=holdout.images_dir,
                out_csv=hold_csv,
                progress=self.ctx.progress,
            )
            holdout_metrics = changenet.evaluate(inference_csv=hold_csv, out_dir=ev_dir / "holdout")
        else:
            atomic_write_json(
                ev_dir / "holdout" / "metrics.json", {"note": "no holdout set in the workspace"}
            )
        selection = {
            "chosen": chosen,
            "rule": "lower KPI FAR@100%recall; ties keep best_val",
            "checkpoint": str(ckpt),
            "checkpoint_sha256": sha256_file(ckpt),
            "candidates": {
                n: {
                    "far_at_100_recall": metrics[n]["far_at_100_recall"],
                    "threshold_at_100_recall": metrics[n]["threshold_at_100_recall"],
                    "auroc": metrics[n].get("auroc"),
                    "checkpoint": str(it_dir / "train" / f"{n}.pth"),
                }
                for n in CANDIDATES
            },
        }
        atomic_write_json(ev_dir / "selection.json", selection)
        self.record("decision", "evaluate", iter_label, chosen=chosen, candidates=selection["candidates"])
        record = {
            "chosen": chosen,
            "best_ckpt_path": ckpt.relative_to(self.ctx.run_dir).as_posix(),
            "best_ckpt_sha256": selection["checkpoint_sha256"],
            "kpi_far": kpi_metrics["far_at_100_recall"],
            "kpi_threshold": kpi_metrics["threshold_at_100_recall"],
            "kpi_auroc": kpi_metrics.get("auroc"),
            "holdout_far": holdout_metrics.get("far_at_100_recall"),
            "holdout_auroc": holdout_metrics.get("auroc"),
            "candidates": {n: {"kpi_far": metrics[n]["far_at_100_recall"]} for n in CANDIDATES},
        }
        return f"chose {chosen}: KPI FAR {record['kpi_far']:.2%}", record

    def rca(self, iter_label: str) -> dict[str, Any]:
        cfg = self.ctx.config()
        chosen = ledger_state.iteration(self.ctx.state(), iter_label)["chosen"]
        out_dir = self.ctx.iter_dir(iter_label) / "rca_results"
        metrics = self.tool(
            "rca.analyze_gaps",
            "rca",
            iter_label,
            analyze_gaps,
            inference_csv=self.ctx.iter_dir(iter_label) / "inference" / "kpi" / chosen / "inference.csv",
            out_dir=out_dir,
            far_target=cfg["far_target"],
            top_k_per_label=cfg["top_k_per_target"],
        )
        explanation = self.draft(
            "rca",
            iter_label,
            task="Explain these RCA findings to an engineer: which boards and defect types hold the "
            "KPI back, and why that blocks the FAR target at 100% recall.",
            facts=metrics,
            offline=explain_gaps(metrics),
            max_words=150,
        )
        atomic_write_text(out_dir / "rca_explanation.md", explanation + "\n")
        return metrics

    def validate(self, iter_label: str, expected_rows: int) -> dict[str, Any]:
        """Files exist, no leakage against validation/KPI/holdout (raw and workspace paths), no silent drop."""
        ws = self.ctx.workspace
        spec = stage_spec(self.ctx, iter_label, "train", must_exist=False)
        against: dict[str, pd.DataFrame] = {}
        for name in ("validation", "kpi", "holdout"):
            split = ws.split(name)
            if split.csv.is_file():
                raw = read_csv(split.csv)
                against[name] = pd.concat([raw, to_workspace_paths(raw, ws.rel(split.images_dir))])
        ds_dir = self.ctx.iter_dir(iter_label) / "dataset"
        report = self.tool(
            "aoi.validate_training_csv",
            "validate",
            iter_label,
            validate_training_csv,
            csv=ds_dir / f"train_combined_{iter_label}.csv",
            images_root=ws.root,
            lights=spec.lights(),
            image_ext=spec.dataset.classify.image_ext,
            against=against,
            expected_rows=expected_rows,
            report_path=ds_dir / "merge_validation.json",
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
        return report
