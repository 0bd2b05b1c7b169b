"""Running one stage: skip it if the log says it is done, else let its agent act, let the reviewer
check its contract, log exactly one line and print one status line."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.markup import escape

from specloop.agents.base import contracts
from specloop.agents.context import RunContext
from specloop.agents.reviewer import Reviewer
from specloop.errors import HardStop, SpecloopError
from specloop.ledger import loop_log
from specloop.ledger import state as ledger_state
from specloop.ledger.redaction import redact
from specloop.llm import BudgetExceeded

FINAL = "final"  # the label of the one stage after the iterations, loop_stop
NEXT_STAGE = {
    "preflight": "approval_gate",
    "train": "inference",
    "inference": "evaluate",
    "evaluate": "report",
    "report": "rca",
    "rca": "routing or loop_stop",
    "routing": "anomalygen",
    "anomalygen": "data_mining",
    "data_mining": "assemble",
    "assemble": "validate",
    "validate": "train",
    "loop_stop": "done",
}


def status_line(ctx: RunContext, iter_label: str, stage: str, summary: str, seconds: float) -> str:
    st = ctx.state()
    if iter_label.startswith("iter"):
        where = f"iter {iter_label.removeprefix('iter')}/{st['max_iterations']}"
    else:
        where = iter_label
    return f"[{where} · {stage}] {summary} · {seconds:.0f}s · next: {NEXT_STAGE.get(stage, '?')}"


def run_stage(
    ctx: RunContext,
    iter_label: str,
    stage: str,
    act: Callable[[], tuple[str, dict[str, Any]]],
    *,
    check_vars: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run `act` once per (iteration, stage). Returns {"halt": check} when the stage hard-stopped."""
    done = loop_log.find(ctx.log_path, iter_label, stage)
    if done is not None:
        if done["status"] == "error":
            return {"halt": "hard_stop"}
        return {}
    owner = contracts()[stage].owner if stage in contracts() else "planner"
    ctx.begin_stage(iter_label, stage)
    ctx.transcript.record(owner, "stage_start", stage, iter_label)
    start = time.monotonic()
    try:
        Reviewer(ctx).check_inputs(stage, iter_label, check_vars)
        summary, record = act()
        Reviewer(ctx).check_stage(stage, iter_label, check_vars)
    except BudgetExceeded:
        raise  # not a hard stop: nothing is logged, so a resume with a larger budget redoes the stage
    except HardStop as stop:
        _hard_stop(ctx, iter_label, stage, stop.check, stop.reason, time.monotonic() - start)
        return {"halt": "hard_stop"}
    except SpecloopError as exc:  # bad input discovered mid-run: a hard stop with its sentence
        _hard_stop(ctx, iter_label, stage, "input", str(exc), time.monotonic() - start)
        return {"halt": "hard_stop"}
    seconds = time.monotonic() - start

    def commit(st: dict[str, Any]) -> None:
        if iter_label == FINAL:
            return  # loop_stop belongs to no iteration; its outcome is the state's `stop` and `best`
        it = ledger_state.iteration(st, iter_label)
        it.update(record)
        it["stage_completed"] = stage
        if stage == "rca":  # an iteration ends with its RCA and stop decision
            it["status"] = "complete"

    ledger_state.update(ctx.run_dir, commit)
    loop_log.append(
        ctx.log_path,
        iter_label=iter_label,
        stage=stage,
        status="ok",
        summary=summary,
        duration_sec=seconds,
        tokens=ctx.tokens,
    )
    ctx.transcript.record(owner, "stage_end", stage, iter_label, summary=summary, seconds=round(seconds, 2))
    ctx.console.print(
        status_line(ctx, iter_label, stage, summary, seconds), highlight=False, markup=False, soft_wrap=True
    )
    return {}


def _hard_stop(ctx: RunContext, iter_label: str, stage: str, check: str, reason: str, seconds: float) -> None:
    reason = redact(reason, ctx.transcript.secrets)  # an exception's text may quote a secret

    def stop(st: dict[str, Any]) -> None:
        st["status"] = "stopped"
        st["stop"] = {
            "reason": "hard_stop",
            "stage": stage,
            "iter": iter_label,
            "check": check,
            "detail": reason,
        }
        if iter_label != FINAL:
            ledger_state.iteration(st, iter_label)["status"] = "failed"

    ledger_state.update(ctx.run_dir, stop)
    loop_log.append(
        ctx.log_path,
        iter_label=iter_label,
        stage=stage,
        status="error",
        summary=f"hard stop [{check}]: {reason}",
        duration_sec=seconds,
        tokens=ctx.tokens,
    )
    ctx.transcript.record("reviewer", "hard_stop", stage, iter_label, check=check, reason=reason)
    ctx.console.print(
        f"[bold red]hard stop[/] {escape(f'at {iter_label} · {stage} [{check}]: {reason}')}",
        highlight=False,
        soft_wrap=True,
    )
