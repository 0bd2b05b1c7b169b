"""The DEFT loop, declared once (stage names follow NVIDIA's loop vocabulary).

preflight → approval_gate → train → inference → evaluate → report → rca → stop? →
routing → anomalygen → data_mining → assemble → validate → train → … → rca → stop? … → loop_stop.
The baseline (label `baseline`) trains from the spec; each iteration (`iter1`, `iter2`, …)
fine-tunes the best model so far on a set grown by mining. Any hard stop goes to `loop_stop`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specloop.ledger.layout import previous_label
from specloop.pipelines.registry import GATE, Pipeline, Stage, register_pipeline


def _after_rca(state: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The planner's stop decision, recorded with the RCA, picks the graph's next step."""
    decision = state["iterations"][label]["decision"]
    if decision["stop"]:
        return {"halt": decision["reason"]}
    return {"iteration": decision["next_iteration"]}


def _values(state: Mapping[str, Any], label: str) -> dict[str, str]:
    it = state.get("iterations", {}).get(label, {})
    values = {"iter": label, "workspace": str(state.get("workspace", ""))}
    if label.startswith("iter"):
        values["prev"] = previous_label(label) or ""
    if it.get("chosen"):
        values["chosen"] = str(it["chosen"])
    return values


DEFT = register_pipeline(
    Pipeline(
        name="deft",
        title="The DEFT loop",
        entry="preflight",
        final="loop_stop",
        variables=("iter", "prev", "chosen", "workspace"),
        values=_values,
        iterative=True,
        scope_order=("baseline", "iteration", "final"),
        stages=(
            Stage("preflight", "planner", "preflight", GATE, "baseline", doc="check, stage, plan, summarise"),
            Stage(GATE, "planner", "approve", "train", "baseline", gate=True, doc="one human approval"),
            Stage("routing", "dataset", "routing", "anomalygen", "iteration", doc="split the RCA targets"),
            Stage("anomalygen", "dataset", "anomalygen", "data_mining", "iteration", doc="ingest synthetic"),
            Stage("data_mining", "dataset", "data_mining", "assemble", "iteration", doc="k-NN mining"),
            Stage("assemble", "dataset", "assemble", "validate", "iteration", doc="next training set"),
            Stage("validate", "reviewer", "validate", "train", "iteration", doc="files, leakage, drops"),
            Stage("train", "coder", "train", "inference", "baseline", ("iteration",), doc="train ChangeNet"),
            Stage(
                "inference", "reviewer", "inference", "evaluate", "baseline", ("iteration",), doc="score KPI"
            ),
            Stage("evaluate", "reviewer", "evaluate", "report", "baseline", ("iteration",), doc="FAR@100%R"),
            Stage("report", "reporter", "report", "rca", "baseline", ("iteration",), doc="summary, HTML"),
            Stage(
                "rca",
                "reviewer",
                "rca",
                "routing",
                "baseline",
                ("iteration",),
                after=_after_rca,
                doc="weak samples, stop decision",
            ),
            Stage("loop_stop", "ops", "loop_stop", None, "final", doc="best model, final report"),
        ),
    )
)
