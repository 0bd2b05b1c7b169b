"""The run's one approval interrupt, in a node that does nothing with side effects before it.

LangGraph re-runs an interrupted node from its first line on resume, so the node only reads
(the log, to skip a gate already passed; the question) before `interrupt()`, and everything the
gate records happens after it returns, through the same stage runner as every other stage.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from langgraph.types import interrupt

from specloop.agents.context import RunContext
from specloop.agents.roster import agent_for
from specloop.agents.runner import run_stage
from specloop.graph.state import GraphState
from specloop.ledger import loop_log
from specloop.ledger.layout import RunLayout
from specloop.pipelines.registry import Pipeline, Stage


def gate_node(
    pipeline: Pipeline, stage: Stage, open_context: Callable[[GraphState], RunContext]
) -> Callable[[GraphState], dict[str, Any]]:
    def approval_gate(state: GraphState) -> dict[str, Any]:
        label = pipeline.label(stage, state.get("iteration", 0))
        if loop_log.find(RunLayout(Path(state["run_dir"])).log, label, stage.name) is not None:
            return {}  # approved before a kill; never ask twice
        ctx = open_context(state)
        request = agent_for(stage.agent, ctx).gate_request(label)  # type: ignore[attr-defined]
        answer = interrupt(request)
        ctx.gate_answer = dict(answer)
        return run_stage(ctx, pipeline, stage, label)

    return approval_gate
