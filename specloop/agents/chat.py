"""The chat agent: decides, for each message, which chat actions to take and what to say.

Two policies with one interface. The offline policy is the intent parser in
`chat_intents`; the model policy lets a chat model choose among the same actions by tool
calling. Either way the actions are the Python functions the graph layer hands in; the policy
only chooses them, and a failed model call falls back to the parser for that turn.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from specloop.agents.chat_intents import parse_intent
from specloop.errors import SpecloopError
from specloop.llm import LLM, BudgetExceeded, LLMError

# A turn is plain JSON, so the conversation can live in a LangGraph checkpoint:
# {"role": "user" | "assistant" | "tool", "text": str,
#  "tool_calls": [{"id", "name", "args"}] (assistant), "id", "name" (tool)}
Turn = dict[str, Any]
HISTORY_TURNS = 30  # how much of the conversation a model sees


@dataclass
class Decision:
    """What to say now, and which actions to take (`{"id", "name", "args"}` each)."""

    text: str
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ChatContext:
    """What a policy may know besides the conversation: the default workspace and a line on the
    current run (from the status action)."""

    default_workspace: Path | None
    run_line: str


def role_text() -> str:
    return resources.files("specloop.agents").joinpath("chat.md").read_text(encoding="utf-8")


def last_user_text(turns: Sequence[Turn]) -> str:
    return next((t["text"] for t in reversed(turns) if t["role"] == "user"), "")


class OfflinePolicy:
    """The intent parser: one action per message, results shown as they are."""

    reads_results = False
    name = "offline intent parser"

    def decide(self, turns: Sequence[Turn], ctx: ChatContext) -> Decision:
        intent = parse_intent(last_user_text(turns), default_workspace=ctx.default_workspace)
        if intent.action is None or intent.action in ("help", "quit"):
            return Decision(intent.said)
        return Decision(
            intent.said, [{"id": f"offline-{len(turns)}", "name": intent.action, "args": intent.args}]
        )


def to_messages(turns: Sequence[Turn]) -> list[BaseMessage]:
    """The conversation as langchain-core messages (tool calls and results paired by id)."""
    out: list[BaseMessage] = []
    for t in turns[-HISTORY_TURNS:]:
        if t["role"] == "user":
            out.append(HumanMessage(t["text"]))
        elif t["role"] == "assistant":
            calls = [{"id": c["id"], "name": c["name"], "args": c["args"]} for c in t.get("tool_calls", [])]
            out.append(AIMessage(t["text"], tool_calls=calls))
        else:
            out.append(ToolMessage(t["text"], tool_call_id=t["id"], name=t.get("name")))
    while out and isinstance(out[0], ToolMessage | AIMessage):  # a cut must not orphan tool results
        out.pop(0)
    return out


class ModelPolicy:
    """A chat model chooses among `tools` by tool calling and words the results."""

    reads_results = True

    def __init__(self, llm: LLM, tools: Sequence[Callable[..., str]]) -> None:
        self.llm = llm
        self.tools = list(tools)
        self.name = f"model {llm.name}"

    def decide(self, turns: Sequence[Turn], ctx: ChatContext) -> Decision:
        default = str(ctx.default_workspace) if ctx.default_workspace else "none"
        system = f"{role_text()}\n\nDefault workspace: {default}\nCurrent run: {ctx.run_line}"
        try:
            reply = self.llm.invoke(
                [SystemMessage(system), *to_messages(turns)], agent="chat", stage="chat", tools=self.tools
            )
        except (LLMError, BudgetExceeded) as exc:
            if turns and turns[-1]["role"] == "tool":
                return Decision("")  # the offline parser already acted on this message: its results stand
            fallback = OfflinePolicy().decide(turns, ctx)
            note = f"(The model did not answer: {exc} I read your message with the offline parser.)"
            return Decision(f"{note} {fallback.text}".strip(), fallback.actions)
        actions = [
            {"id": c.get("id") or f"call-{i}", "name": c["name"], "args": dict(c["args"])}
            for i, c in enumerate(reply.tool_calls)
        ]
        return Decision(reply.text.strip(), actions)


def call_action(tools: dict[str, Callable[..., str]], name: str, args: dict[str, Any]) -> str:
    """Run one chosen action; a wrong name or wrong arguments (from a model) become a sentence."""
    fn = tools.get(name)
    if fn is None:
        return f"There is no action {name!r}; the actions are {', '.join(sorted(tools))}."
    try:
        inspect.signature(fn).bind(**args)
    except TypeError as exc:
        return f"Action {name} does not take these arguments ({json.dumps(args)}): {exc}."
    try:
        return fn(**args)
    except SpecloopError as exc:
        return f"Could not {name.replace('_', ' ')}: {exc}"
