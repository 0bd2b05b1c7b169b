"""Running one stage of a registered pipeline, the same way for every stage (the gate and the final
stage included): skip it if the log says it is done; else check its contract's inputs, let its
agent act, check its outputs and done-when, record the result, log exactly one line and print one
status line."""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape

from specloop.agents.base import StageResult
from specloop.agents.context import RunContext
from specloop.agents.reviewer import Reviewer
from specloop.agents.roster import agent_for
from specloop.errors import SpecloopError
from specloop.ledger import loop_log
from specloop.ledger import state as ledger_state
from specloop.ledger.layout import FINAL, iteration_number
from specloop.ledger.redaction import redact
from specloop.llm import BudgetExceeded
from specloop.pipelines.registry import Pipeline, Stage

HALTED = {"halt": "hard_stop"}


def status_line(
    ctx: RunContext, pipeline: Pipeline, label: str, stage: str, summary: str, seconds: float
) -> str:
    """`[iter 2/3 · train] FAR 6.3% → 3.1% · 41s · next: evaluate`"""
    where = label
    if pipeline.iterative and label.startswith("iter"):
        where = f"iter {iteration_number(label)}/{ctx.state()['max_iterations']}"
    return f"[{where} · {stage}] {summary} · {seconds:.0f}s · next: {pipeline.next_hint(stage)}"


def after(ctx: RunContext, stage: Stage, label: str) -> dict[str, Any]:
    """The graph update that follows a finished stage (the same on a resume as on the first run)."""
    return stage.after(ctx.state(), label) if stage.after is not None else {}


def run_stage(ctx: RunContext, pipeline: Pipeline, stage: Stage, label: str) -> dict[str, Any]:
    """Run `stage` once per label. Returns the graph update, or {"halt": "hard_stop"}."""
    done = loop_log.find(ctx.log_path, label, stage.name)
    if done is not None:
        return HALTED if done["status"] == "error" else after(ctx, stage, label)
    contract = ctx.contracts.get(pipeline.name, stage.name)
    ctx.begin_stage(label, stage.name)
    ctx.transcript.record(stage.agent, "stage_start", stage.name, label)
    start = time.monotonic()
    reviewer = Reviewer(ctx)
    try:
        if contract is not None:
            reviewer.check_inputs(contract, label)
        result: StageResult = getattr(agent_for(stage.agent, ctx), stage.method)(label)
        if contract is not None:
            reviewer.check_stage(contract, label)
    except BudgetExceeded:
        raise  # not a hard stop: nothing is logged, so a resume with a larger budget redoes the stage
    except SpecloopError as exc:  # a failed check, or bad input found mid-run: a stop naming its rule
        _hard_stop(ctx, pipeline, label, stage.name, exc.rule, exc.message, time.monotonic() - start)
        return HALTED
    seconds = time.monotonic() - start
    ledger_state.update(ctx.run_dir, lambda st: _commit(st, pipeline, stage, label, result))
    # transcript first: a kill between the two leaves a stage that is re-run, never a logged stage
    # without its transcript entry
    ctx.transcript.record(
        stage.agent, "stage_end", stage.name, label, summary=result.summary, seconds=round(seconds, 2)
    )
    loop_log.append(
        ctx.log_path,
        iter_label=label,
        stage=stage.name,
        status="ok",
        summary=result.summary,
        duration_sec=seconds,
        tokens=ctx.tokens,
    )
    ctx.console.print(
        status_line(ctx, pipeline, label, stage.name, result.summary, seconds),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return after(ctx, stage, label)


def _commit(st: dict[str, Any], pipeline: Pipeline, stage: Stage, label: str, result: StageResult) -> None:
    if not pipeline.iterative:
        st.setdefault("stages", {})[stage.name] = {**result.record, "status": "complete"}
        if stage.next is None or st["config"]["options"].get("stop_after") == stage.name:
            st["status"] = "complete"  # the last stage, or the one the person asked to end at
        return
    if label == FINAL:
        return  # loop_stop belongs to no iteration; its outcome is the state's `stop` and `best`
    it = ledger_state.iteration(st, label)
    it.update(result.record)
    it["stage_completed"] = stage.name
    if stage.after is not None:  # the stage that decides what follows ends its iteration
        it["status"] = "complete"


def _hard_stop(
    ctx: RunContext, pipeline: Pipeline, label: str, stage: str, check: str, reason: str, seconds: float
) -> None:
    reason = redact(reason, ctx.transcript.secrets)  # an exception's text may quote a secret

    def stop(st: dict[str, Any]) -> None:
        st["status"] = "stopped"
        st["stop"] = {"reason": "hard_stop", "stage": stage, "iter": label, "check": check, "detail": reason}
        if pipeline.iterative and label != FINAL:
            ledger_state.iteration(st, label)["status"] = "failed"

    ledger_state.update(ctx.run_dir, stop)
    ctx.transcript.record("reviewer", "hard_stop", stage, label, check=check, reason=reason)
    loop_log.append(
        ctx.log_path,
        iter_label=label,
        stage=stage,
        status="error",
        summary=f"hard stop [{check}]: {reason}",
        duration_sec=seconds,
        tokens=ctx.tokens,
    )
    ctx.console.print(
        f"[bold red]hard stop[/] {escape(f'at {label} · {stage} [{check}]: {reason}')}",
        highlight=False,
        soft_wrap=True,
    )
