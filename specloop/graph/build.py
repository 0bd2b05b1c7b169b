"""A LangGraph StateGraph from a registered pipeline: one node per stage, each running its stage
through the shared runner; every edge goes on to the stage's `next`, or to the pipeline's final
stage when a stage halts. Contracts are loaded (and validated) before the graph is built, so a
broken spec stops the run before its first stage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from specloop.agents.context import RunContext
from specloop.agents.runner import run_stage
from specloop.graph.gate import gate_node
from specloop.graph.state import GraphState
from specloop.pipelines.registry import Pipeline, Stage
from specloop.skills.contracts import load_contracts

Node = Callable[[GraphState], dict[str, Any]]


def open_context(state: GraphState) -> RunContext:
    options = state["options"]
    return RunContext.open(
        Path(state["run_dir"]),
        Path(state["workspace"]),
        progress=options.get("progress", True),
        options=options,
    )


def stage_node(pipeline: Pipeline, stage: Stage) -> Node:
    def node(state: GraphState) -> dict[str, Any]:
        ctx = open_context(state)
        return run_stage(ctx, pipeline, stage, pipeline.label(stage, state.get("iteration", 0)))

    node.__name__ = stage.name
    return node


def nodes(pipeline: Pipeline) -> dict[str, Node]:
    return {
        s.name: gate_node(pipeline, s, open_context) if s.gate else stage_node(pipeline, s)
        for s in pipeline.stages
    }


def _route(stage: str, next_stage: str, final: str | None) -> Callable[[GraphState], str]:
    def route(state: GraphState) -> str:
        if state.get("halt"):
            return final or END
        if state.get("options", {}).get("stop_after") == stage:
            return END  # the person asked for the run to end here (`--stop-after`)
        return next_stage

    return route


def build_graph(
    pipeline: Pipeline, checkpointer: BaseCheckpointSaver, *, specs: Sequence[Path] | None = None
) -> CompiledStateGraph:
    load_contracts(specs)  # raises ContractLoadError, naming file and line, before anything runs
    g = StateGraph(GraphState)
    for name, fn in nodes(pipeline).items():
        g.add_node(name, fn)
    g.add_edge(START, pipeline.entry)
    for s in pipeline.stages:
        if s.next is None:
            g.add_edge(s.name, END)
            continue
        targets = [s.next, pipeline.final or END, END]
        g.add_conditional_edges(s.name, _route(s.name, s.next, pipeline.final), list(dict.fromkeys(targets)))
    return g.compile(checkpointer=checkpointer)
