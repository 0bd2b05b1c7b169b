"""The DEFT loop as a LangGraph StateGraph. Nodes are named after NVIDIA's stages; each calls the
agent that owns its stage through `run_stage`, which makes it idempotent on resume.

preflight → approval_gate → train → inference → evaluate → report → rca → stop? →
routing → anomalygen → data_mining → assemble → validate → train → … → loop_stop
(iteration 0 is the baseline: it trains from the spec, later iterations fine-tune).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from specloop.agents.coder import Coder
from specloop.agents.context import RunContext
from specloop.agents.dataset import Dataset
from specloop.agents.ops import Ops
from specloop.agents.planner import Planner
from specloop.agents.reporter import Reporter
from specloop.agents.reviewer import Reviewer
from specloop.agents.stages import run_stage
from specloop.graph.gate import GATE, approval_gate
from specloop.graph.state import DeftGraphState
from specloop.ledger import loop_log
from specloop.ledger import state as ledger_state


def _ctx(state: DeftGraphState) -> RunContext:
    options = state["options"]
    return RunContext.open(
        Path(state["run_dir"]),
        Path(state["workspace"]),
        progress=options.get("progress", True),
        options=options,
    )


def _label(state: DeftGraphState) -> str:
    n = state.get("iteration", 0)
    return "baseline" if n == 0 else f"iter{n}"


def preflight(state: DeftGraphState) -> dict[str, Any]:
    ctx = _ctx(state)
    return run_stage(ctx, "baseline", "preflight", lambda: Planner(ctx).preflight(state["options"]))


def train(state: DeftGraphState) -> dict[str, Any]:
    ctx = _ctx(state)
    return run_stage(ctx, _label(state), "train", lambda: Coder(ctx).train(_label(state)))


def inference(state: DeftGraphState) -> dict[str, Any]:
    ctx = _ctx(state)
    label = _label(state)
    return run_stage(ctx, label, "inference", lambda: (Reviewer(ctx).inference(label), {}))


def evaluate(state: DeftGraphState) -> dict[str, Any]:
    ctx = _ctx(state)
    label = _label(state)

    def act() -> tuple[str, dict[str, Any]]:
        summary, record = Reviewer(ctx).evaluate(label)
        st = ctx.state()
        best = st.get("best")
        before = best["kpi_far"] if best else None
        if best is None or record["kpi_far"] < best["kpi_far"]:
            st["best"] = {"iter": label, "checkpoint": record["best_ckpt_path"], "kpi_far": record["kpi_far"]}
            ledger_state.save(ctx.run_dir, st)
        target = st["config"]["far_target"]
        arrow = (
            f"FAR {before:.1%} → {record['kpi_far']:.1%}"
            if before is not None
            else f"FAR {record['kpi_far']:.1%}"
        )
        return f"{arrow} (target < {target:.1%}); {summary}", record

    return run_stage(ctx, label, "evaluate", act)


def report(state: DeftGraphState) -> dict[str, Any]:
    ctx = _ctx(state)
    label = _label(state)
    return run_stage(ctx, label, "report", lambda: (Reporter(ctx).report(label), {}))


def rca(state: DeftGraphState) -> dict[str, Any]:
    ctx = _ctx(state)
    label = _label(state)

    def act() -> tuple[str, dict[str, Any]]:
        metrics = Reviewer(ctx).rca(label)
        decision = Planner(ctx).decide(label, metrics)
        summary = f"{metrics['n_selected']} weak target(s) selected; {decision['rationale']}"
        return summary, {
            "rca": metrics,
            "decision": decision,
            "targets_by_label": metrics["selected_by_label"],
        }

    out = run_stage(ctx, label, "rca", act)
    if out.get("halt"):
        return out
    decision = ledger_state.iteration(ctx.state(), label)["decision"]
    if decision["stop"]:
        return {"halt": decision["reason"]}
    return {"iteration": decision["next_iteration"]}


def routing(state: DeftGraphState) -> dict[str, Any]:
    ctx = _ctx(state)
    label = _label(state)
    n = state["iteration"]
    prev = "baseline" if n == 1 else f"iter{n - 1}"

    def act() -> tuple[str, dict[str, Any]]:
        ledger_state.update(ctx.run_dir, lambda st: st.__setitem__("current_iteration", n))
        s = Dataset(ctx).routing(label, prev)
        return f"{s['to_mining']} target(s) to mining, {s['to_anomalygen']} to the synthetic pool", {
            "routing": s
        }

    return run_stage(ctx, label, "routing", act, check_vars={"prev": prev})


def anomalygen(state: DeftGraphState) -> dict[str, Any]:
    ctx = _ctx(state)
    label = _label(state)

    def act() -> tuple[str, dict[str, Any]]:
        s = Dataset(ctx).anomalygen(label)
        if s["skipped"]:
            return "no targets routed to the synthetic pool: skipped", {"anomalygen": s}
        return f"ingested {s['rows_ingested']} synthetic pair(s) for {', '.join(s['routed_labels'])}", {
            "anomalygen": s
        }

    return run_stage(ctx, label, "anomalygen", act)


def data_mining(state: DeftGraphState) -> dict[str, Any]:
    ctx = _ctx(state)
    label = _label(state)

    def act() -> tuple[str, dict[str, Any]]:
        s = Dataset(ctx).data_mining(label)
        if s.get("skipped"):
            return "no targets routed to mining: skipped", {"mining": s}
        return (
            f"kept {s['kept']} of {s['candidates']} neighbour(s) (rejected {s['rejected']}, "
            f"duplicates {s['duplicates']})",
            {"mining": s},
        )

    return run_stage(ctx, label, "data_mining", act)


def assemble(state: DeftGraphState) -> dict[str, Any]:
    ctx = _ctx(state)
    label = _label(state)

    def act() -> tuple[str, dict[str, Any]]:
        s = Dataset(ctx).assemble(label)
        added = {k: v for k, v in s["by_source"].items() if k in ("mining_pool", "synthetic")}
        return (
            f"{s['rows_out']} rows ({', '.join(f'+{v} {k}' for k, v in added.items()) or 'nothing new'})",
            {
                "assembled": s,
                "rows_added": added,
            },
        )

    return run_stage(ctx, label, "assemble", act)


def validate(state: DeftGraphState) -> dict[str, Any]:
    ctx = _ctx(state)
    label = _label(state)

    def act() -> tuple[str, dict[str, Any]]:
        expected = ledger_state.iteration(ctx.state(), label)["assembled"]["rows_in"]
        r = Reviewer(ctx).validate(label, expected)
        rel = f"{label}/dataset/train_combined_{label}.csv"
        ledger_state.update(ctx.run_dir, lambda st: st.__setitem__("training_csv", rel))
        return f"{r['rows_checked']} rows valid: files present, no leakage, no silent drop", {}

    return run_stage(ctx, label, "validate", act)


def loop_stop(state: DeftGraphState) -> dict[str, Any]:
    ctx = _ctx(state)
    halt = state.get("halt") or "max_iterations"

    def act() -> tuple[str, dict[str, Any]]:
        record = Ops(ctx).prepare_inference()
        st = ctx.state()
        if st.get("stop") is None:
            st["stop"] = {"reason": halt}
        st["status"] = "stopped" if st["stop"]["reason"] == "hard_stop" else "complete"
        ledger_state.save(ctx.run_dir, st)
        Reporter(ctx).final_report()
        if record is None:
            return f"stopped ({st['stop']['reason']}) before any model was trained", {}
        return (
            f"stopped ({st['stop']['reason']}); best model from {record['iteration']}, FAR {record['kpi_far']:.2%}",
            {},
        )

    if loop_log.find(ctx.log_path, "final", "loop_stop") is not None:
        return {}
    has_model = ctx.state().get("best") is not None
    return run_stage(ctx, "final", "loop_stop", act) if has_model else _stop_without_model(ctx, act)


def _stop_without_model(ctx: RunContext, act: Any) -> dict[str, Any]:
    summary, _ = act()
    loop_log.append(
        ctx.log_path, iter_label="final", stage="loop_stop", status="ok", summary=summary, duration_sec=0.0
    )
    return {}


def _after(next_node: str):
    def route(state: DeftGraphState) -> str:
        return "loop_stop" if state.get("halt") else next_node

    return route


def build_deft_graph(checkpointer: BaseCheckpointSaver) -> CompiledStateGraph:
    g = StateGraph(DeftGraphState)
    nodes = {
        "preflight": preflight,
        GATE: approval_gate,
        "train": train,
        "inference": inference,
        "evaluate": evaluate,
        "report": report,
        "rca": rca,
        "routing": routing,
        "anomalygen": anomalygen,
        "data_mining": data_mining,
        "assemble": assemble,
        "validate": validate,
        "loop_stop": loop_stop,
    }
    for name, fn in nodes.items():
        g.add_node(name, fn)
    g.add_edge(START, "preflight")
    chain = [
        ("preflight", GATE),
        (GATE, "train"),
        ("train", "inference"),
        ("inference", "evaluate"),
        ("evaluate", "report"),
        ("report", "rca"),
        ("rca", "routing"),
        ("routing", "anomalygen"),
        ("anomalygen", "data_mining"),
        ("data_mining", "assemble"),
        ("assemble", "validate"),
        ("validate", "train"),
    ]
    for src, dst in chain:
        g.add_conditional_edges(src, _after(dst), [dst, "loop_stop"])
    g.add_edge("loop_stop", END)
    return g.compile(checkpointer=checkpointer)
