"""Planner: pre-flight (what will run, with which defaults) and the stop decision after each RCA."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from specloop.agents.base import Agent, StageResult
from specloop.agents.dataset import Dataset
from specloop.agents.ops import Ops
from specloop.errors import HardStop
from specloop.ledger import state as ledger_state
from specloop.ledger.files import atomic_write_text
from specloop.ledger.layout import iteration_number
from specloop.ledger.requests import stop_request
from specloop.pipelines.registry import GATE
from specloop.skills.aoi.check import synthetic_pool_gap
from specloop.skills.aoi.problems import errors
from specloop.skills.aoi.schema import read_csv
from specloop.skills.aoi.spec import load_spec
from specloop.skills.mining import resolve_embedder

DEFAULTS: dict[str, Any] = {
    "max_iterations": 3,
    "top_k_per_target": 5,
    "min_similarity": 0.9,
    "far_target": 0.01,
    "embedder": "siglip",
    "mining_strategy": "knn",  # "random": the ablation's control arm, same row budget
}
DEFAULT_EPOCHS = 20
# Rough CPU training speed for a small CNN at 64 px per light (FACTS.md), used for the estimate only.
ROUGH_PAIRS_PER_SEC = {"cpu": 40.0, "cuda": 600.0}


def kpi_target_text(far_target: float) -> str:
    return f"FAR < {far_target:.2%}".replace(".00%", "%")


class Planner(Agent):
    role = "planner"

    def preflight(self, label: str) -> StageResult:
        ctx = self.ctx
        options = ctx.config()["options"]
        ws = ctx.workspace
        spec = load_spec(ws.spec)
        cfg = {k: options.get(k) if options.get(k) is not None else v for k, v in DEFAULTS.items()}

        def targets(st: dict[str, Any]) -> None:  # first: a stop below still reports against them
            st["config"] |= cfg
            st["max_iterations"] = cfg["max_iterations"]
            st["kpi_target"] = kpi_target_text(cfg["far_target"])

        ledger_state.update(ctx.run_dir, targets)
        baseline_epochs = options.get("epochs") or spec.train.num_epochs or DEFAULT_EPOCHS
        cfg |= {
            "baseline_epochs": int(baseline_epochs),
            "finetune_epochs": int(options.get("finetune_epochs") or max(1, baseline_epochs // 2)),
            "finetune_lr": spec.train.optim.lr * 0.5,
            "spec_file": str(ws.spec),
        }
        self._prove_plan(spec, (cfg["baseline_epochs"], cfg["finetune_epochs"]), options)
        env = self.tool("ops.env_probe", "preflight", "baseline", Ops(ctx).environment, spec=spec)
        cfg |= {"device": env["device"], "device_name": env["device_name"]}
        embedder, reason = resolve_embedder(cfg["embedder"])
        if embedder.startswith("changenet:") or (embedder == "pixels" and cfg["embedder"] == "siglip"):
            embedder = "changenet:baseline"
            reason = reason.split(";")[0] + "; mining will use the baseline ChangeNet's backbone features"
        cfg["embedder"], cfg["embedder_reason"] = embedder, reason
        self.record("decision", "preflight", "baseline", embedder=embedder, reason=reason)
        pool = Dataset(ctx).stage_pool()

        counts = {}
        for split in ws.splits():
            if split.csv.is_file():
                df = read_csv(split.csv)
                counts[split.name] = {
                    "rows": len(df),
                    "labels": df["label"].value_counts().sort_index().to_dict(),
                }
        defect_types = sorted({lab for c in counts.values() for lab in c["labels"] if lab != "PASS"})
        n_train = counts["training"]["rows"]
        grown = n_train + cfg["max_iterations"] * 5 * cfg["top_k_per_target"] * max(len(defect_types), 1)
        rate = ROUGH_PAIRS_PER_SEC.get(env["device"], 40.0)
        est = (
            n_train * cfg["baseline_epochs"] + cfg["max_iterations"] * grown * cfg["finetune_epochs"]
        ) / rate
        resuming = bool(options.get("resuming"))

        def apply(st: dict[str, Any]) -> None:
            st["config"] |= cfg
            st["max_iterations"] = cfg["max_iterations"]
            st["kpi_target"] = kpi_target_text(cfg["far_target"])
            st["environment"] = env
            st["counts"] = counts

        ledger_state.update(ctx.run_dir, apply)
        aug = spec.dataset.classify.augmentation_config
        lines = [
            "# Pre-Flight Summary",
            "",
            f"- Workspace: `{ws.root}`",
            f"- Run directory: `{ctx.run_dir}` ({'resuming' if resuming else 'new run'})",
            f"- KPI: {kpi_target_text(cfg['far_target'])} at 100 % defect recall on `kpi/testing_set.csv`; "
            "`kpi/holdout_set.csv` scored for the report only",
            f"- Iterations: up to {cfg['max_iterations']}; top-k per target {cfg['top_k_per_target']}; "
            f"min similarity {cfg['min_similarity']}; new rows by {cfg['mining_strategy']}"
            + (
                " (random draw: the ablation control)"
                if cfg["mining_strategy"] == "random"
                else " neighbours"
            ),
            f"- Model: ChangeNet `{spec.model.backbone.type}` ({spec.model.classify.difference_module} head), "
            f"{spec.dataset.classify.image_width}x{spec.dataset.classify.image_height} px, lights "
            f"{', '.join(spec.lights()) or 'one'} joined {spec.dataset.classify.concat_type or 'linear'}",
            f"- Epochs: baseline {cfg['baseline_epochs']}, fine-tune {cfg['finetune_epochs']} per iteration",
            f"- Augmentation: {'on' if aug.augment else 'off'}",
            f"- Embedder: {embedder} — {reason}",
            f"- Wording: {self._wording()}",
            f"- Device: {env['device_name']} ({env['cpu_threads']} threads), {env['memory_free_gb']} GB free "
            f"memory, {env['disk_free_gb']} GB free disk; batch {spec.dataset.classify.batch_size} needs about "
            f"{env['batch_memory_gb']} GB ({'fits' if env['batch_fits'] else 'may not fit'})",
            f"- Synthetic pool: {pool['synthetic_rows']} pre-generated pairs staged "
            f"({', '.join(pool['synthetic_labels']) or 'none'}); mining pool {pool['mining_pool_rows']} rows",
            f"- Estimated time: about {math.ceil(est / 60)} min (rough)",
            "",
            "| split | rows | labels |",
            "|---|---:|---|",
        ]
        for name, c in counts.items():
            labels = ", ".join(f"{k} {v}" for k, v in c["labels"].items())
            lines.append(f"| {name} | {c['rows']} | {labels} |")
        text = "\n".join(lines) + "\n"
        facts = {
            "config": {k: v for k, v in cfg.items() if k not in ("spec_file", "embedder_reason")},
            "counts": counts,
            "estimated_minutes": math.ceil(est / 60),
            # what the machine is, not how full it is right now: a replayed run asks the same
            "environment": {k: env[k] for k in ("device", "device_name", "cpu_threads", "batch_fits")},
            "synthetic_rows": pool["synthetic_rows"],
            "mining_pool_rows": pool["mining_pool_rows"],
        }
        narrative = self.draft(
            "preflight",
            "baseline",
            task="Write a short pre-flight narrative for the person approving this DEFT run: what will "
            "run, what the data looks like, and what to watch for.",
            facts=facts,
            offline="",
            max_words=200,
        )
        if narrative:
            text += "\n## Narrative\n\n" + narrative + "\n"
        atomic_write_text(ctx.layout.preflight_summary, text)
        ctx.console.print(text, markup=False, highlight=False)
        one_line = (
            f"{n_train} training rows, {len(defect_types)} defect types, embedder {embedder}, "
            f"{env['device']}; about {math.ceil(est / 60)} min"
        )
        return StageResult(one_line, {"estimated_seconds": est, "defect_types": defect_types})

    def _prove_plan(self, spec: Any, epochs: tuple[int, ...], options: dict[str, Any]) -> None:
        """Stop before the gate on anything that would fail after approval (the first reason only)."""
        from specloop.skills.changenet.preflight import check_plan

        ws = self.ctx.workspace
        found = errors(check_plan(spec, ws.root, ws.rel(ws.spec), epochs=epochs))
        if found:
            raise HardStop(found[0].rule, found[0].sentence().removesuffix(f" [{found[0].rule}]"))
        gap = synthetic_pool_gap(ws)
        if gap is not None and not options.get("no_synthetic_pool"):
            raise HardStop(
                "synthetic-pool-missing",
                f"{gap}; add one, or start the run with --no-synthetic-pool to run without it",
            )

    def gate_request(self, label: str) -> dict[str, Any]:
        """What the gate asks (read only: LangGraph re-runs the gate node up to its interrupt)."""
        summary = self.ctx.layout.preflight_summary.read_text(encoding="utf-8")
        return {
            "question": "Approve this DEFT run? (go/yes)",
            "summary": summary,
            "run_dir": str(self.ctx.run_dir),
        }

    def approve(self, label: str) -> StageResult:
        """Record the approval the gate received (`--yes`, a person at the prompt, or the chat)."""
        answer = self.ctx.gate_answer or {}
        by = str(answer.get("by", "unknown"))
        at = datetime.now(UTC).isoformat(timespec="seconds")

        def approve(st: dict[str, Any]) -> None:
            st["approval"] = {"approved": bool(answer.get("approved")), "by": by, "at": at}
            st["status"] = "in_progress"

        ledger_state.update(self.ctx.run_dir, approve)
        self.record("approval", GATE, label, approved=bool(answer.get("approved")), by=by)
        return StageResult(f"approved by {by}")

    def _wording(self) -> str:
        llm = self.ctx.llm
        if llm is None:
            return "offline (the tools' own text; no model)"
        return f"{llm.name}, every number checked against the ledger before use"

    def decide(self, iter_label: str, rca: dict[str, Any]) -> dict[str, Any]:
        """Stop when the KPI is met, the last iteration is done or a person asked to stop; otherwise go on."""
        st = self.ctx.state()
        n = iteration_number(iter_label)
        far, target = rca["far_at_100_recall"], rca["far_target"]
        if rca["kpi_met"]:
            decision = {"stop": True, "reason": "kpi_met"}
            why = f"KPI met: FAR@100%R {far:.2%} < {target:.2%}."
        elif n >= st["max_iterations"]:
            decision = {"stop": True, "reason": "max_iterations"}
            why = f"{n} of {st['max_iterations']} iterations done; FAR@100%R {far:.2%} vs target < {target:.2%}."
        elif (request := stop_request(self.ctx.run_dir)) is not None:
            decision = {"stop": True, "reason": "stop_requested", "requested_by": request["by"]}
            why = (
                f"Stop requested in {request['by']} at {request['at']}; FAR@100%R {far:.2%} vs target "
                f"< {target:.2%}."
            )
        elif rca["n_selected"] == 0:
            decision = {"stop": True, "reason": "no_targets"}
            why = "RCA selected no weak samples to act on."
        else:
            decision = {"stop": False, "reason": "continue", "next_iteration": n + 1}
            why = f"FAR@100%R {far:.2%} vs target < {target:.2%}; going to iteration {n + 1}."
        facts = {
            "iteration": n,
            "max_iterations": st["max_iterations"],
            "far_at_100_recall": far,
            "far_target": target,
            "n_selected": rca["n_selected"],
            "selected_by_label": rca.get("selected_by_label", {}),
        }
        decision["rationale"] = " ".join(
            self.draft(
                "rca",
                iter_label,
                task=f"In one or two sentences, give the rationale for this decision: {decision['reason']}.",
                facts=facts,
                offline=why,
                max_words=60,
            ).split()
        )
        self.record("decision", "rca", iter_label, **decision)
        return decision
