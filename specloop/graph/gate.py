"""The run's one approval interrupt, in a node that does nothing with side effects before it.

LangGraph re-runs an interrupted node from its first line on resume, so everything the gate
records happens after `interrupt()` returns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langgraph.types import interrupt

from specloop.agents.context import RunContext
from specloop.graph.state import DeftGraphState
from specloop.ledger import loop_log
from specloop.ledger import state as ledger_state

GATE = "approval_gate"


def approval_gate(state: DeftGraphState) -> dict[str, Any]:
    run_dir = Path(state["run_dir"])
    if loop_log.find(run_dir / "loop_log.jsonl", "baseline", GATE) is not None:
        return {}  # approved before a kill; never ask twice
    summary = (run_dir / "preflight_summary.md").read_text(encoding="utf-8")
    answer = interrupt(
        {"question": "Approve this DEFT run? (go/yes)", "summary": summary, "run_dir": str(run_dir)}
    )
    ctx = RunContext.open(run_dir, Path(state["workspace"]))
    by = str(answer.get("by", "unknown"))
    at = datetime.now(UTC).isoformat(timespec="seconds")

    def approve(st: dict[str, Any]) -> None:
        st["approval"] = {"approved": True, "by": by, "at": at}
        st["status"] = "in_progress"

    ledger_state.update(run_dir, approve)
    ctx.transcript.record("planner", "approval", GATE, "baseline", approved=True, by=by)
    loop_log.append(
        ctx.log_path,
        iter_label="baseline",
        stage=GATE,
        status="ok",
        summary=f"approved by {by}",
        duration_sec=0.0,
    )
    ctx.console.print(
        f"[baseline · approval_gate] approved by {by} · next: train",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return {}
