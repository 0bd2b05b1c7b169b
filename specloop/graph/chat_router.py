"""The chat router: a small LangGraph graph that turns one message into actions and an answer.

`understand` (the offline parser or a chat model picks actions) → `act` (the actions run) → back
to `understand` while a model reads the results. The conversation is its state; the session
checkpoints it beside the run (see `graph.chat`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from specloop.agents.chat import ChatContext, Decision, ModelPolicy, OfflinePolicy, Turn, call_action

MAX_ROUNDS = 4  # model turns per message: choose actions, read results, … then answer
LOBBY = {"configurable": {"thread_id": "chat"}}  # the conversation before any run exists


class ChatState(TypedDict, total=False):
    turns: Annotated[list[Turn], operator.add]
    actions: list[dict[str, Any]]
    rounds: int


def chat_thread(run_dir: Path) -> dict[str, Any]:
    """The run's conversation thread, next to the run's own (LangGraph keeps one root graph per
    thread, so the two graphs cannot share a thread id without overwriting each other)."""
    return {"configurable": {"thread_id": f"{run_dir.name}:chat"}}


def build_chat_graph(
    policy: OfflinePolicy | ModelPolicy,
    tools: dict[str, Callable[..., str]],
    context: Callable[[], ChatContext],
    checkpointer: BaseCheckpointSaver,
) -> CompiledStateGraph:
    """understand → (act → understand)* → END; the offline parser acts once and answers with the
    results, a model reads them and answers in its own words (at most MAX_ROUNDS rounds)."""

    def understand(state: ChatState) -> dict[str, Any]:
        decision: Decision = policy.decide(state["turns"], context())
        turn: Turn = {"role": "assistant", "text": decision.text}
        if decision.actions:
            turn["tool_calls"] = decision.actions
        return {"turns": [turn], "actions": decision.actions, "rounds": state.get("rounds", 0) + 1}

    def act(state: ChatState) -> dict[str, Any]:
        results = [
            {
                "role": "tool",
                "id": a["id"],
                "name": a["name"],
                "text": call_action(tools, a["name"], a["args"]),
            }
            for a in state["actions"]
        ]
        return {"turns": results, "actions": []}

    def after_understand(state: ChatState) -> str:
        return "act" if state.get("actions") else END

    def after_act(state: ChatState) -> str:
        return "understand" if policy.reads_results and state.get("rounds", 0) < MAX_ROUNDS else END

    g = StateGraph(ChatState)
    g.add_node("understand", understand)
    g.add_node("act", act)
    g.add_edge(START, "understand")
    g.add_conditional_edges("understand", after_understand, ["act", END])
    g.add_conditional_edges("act", after_act, ["understand", END])
    return g.compile(checkpointer=checkpointer)
