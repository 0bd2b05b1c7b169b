"""Record a sequence of calls against a loopback model, then replay it with no server."""

# ruff: noqa: F811  (pytest fixtures imported from test_llm_wire are redefined as arguments)

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from test_llm_wire import PROMPT, Wire, get_status, isolate_env, wire, workspace  # noqa: F401

from specloop.errors import SpecloopError
from specloop.llm import LLMCall, LLMError, get_llm, read_cassette


def _conversation(llm, wire: Wire | None = None) -> list[AIMessage]:
    """A short agent session: a tool call, its result, a summary, and the same prompt twice."""
    if wire is not None:
        wire.server.push(
            wire.reply(None, tool_calls=[("call_1", "get_status", {"run_dir": "runs/r1"})], usage=(30, 5)),
            wire.reply("Iteration 2 of 3.", usage=(40, 6)),
            wire.reply("FAR fell from 6.3% to 3.1%.", usage=(12, 9)),
            wire.reply("FAR fell from 6.3% to 3.1% (again).", usage=(12, 10)),
        )
    first = llm.invoke(PROMPT, agent="chat", stage="turn", tools=[get_status])
    result = ToolMessage(get_status(**first.tool_calls[0]["args"]), tool_call_id=first.tool_calls[0]["id"])
    second = llm.invoke([*PROMPT, first, result], agent="chat", stage="turn", tools=[get_status])
    summary = [HumanMessage("Summarise iteration 2.")]
    third = llm.invoke(summary, agent="reporter", stage="iteration_summary")
    fourth = llm.invoke(summary, agent="reporter", stage="iteration_summary")
    return [first, second, third, fourth]


def _comparable(message: AIMessage) -> tuple:
    return (message.content, message.tool_calls, message.usage_metadata)


def test_record_then_replay_gives_the_same_calls_and_replies(wire: Wire, workspace: Path) -> None:
    cassette = workspace / "results" / "run" / "llm_cassette.jsonl"
    recorded: list[LLMCall] = []
    live = get_llm(wire.llm, workspace=workspace, recorder=recorded.append, record_to=cassette)
    live_replies = _conversation(live, wire)
    wire.server.httpd.shutdown()  # replay must not need the server
    wire.server.httpd.server_close()

    replayed: list[LLMCall] = []
    replay = get_llm(f"replay:{cassette}", workspace=workspace, recorder=replayed.append)
    replay_replies = _conversation(replay)

    assert replay.available and replay.name == f"replay:{cassette}"
    assert [_comparable(m) for m in replay_replies] == [_comparable(m) for m in live_replies]
    assert replay_replies[2].text != replay_replies[3].text  # repeated prompts answered in recorded order
    assert replayed == recorded
    assert [c.agent for c in recorded] == ["chat", "chat", "reporter", "reporter"]
    assert len(read_cassette(cassette)) == 4
    assert replay.budget.spent_tokens == live.budget.spent_tokens == 30 + 5 + 40 + 6 + 12 + 9 + 12 + 10


def test_replay_miss_names_agent_and_stage(wire: Wire, workspace: Path) -> None:
    cassette = workspace / "cassette.jsonl"
    live = get_llm(wire.llm, workspace=workspace, record_to=cassette)
    wire.server.push(wire.reply("recorded"))
    live.invoke(PROMPT, agent="planner", stage="preflight")
    replay = get_llm(f"replay:{cassette}", workspace=workspace)

    with pytest.raises(
        LLMError, match=r"replay miss .* agent 'planner' at stage 'stop_rationale'.*no recorded call"
    ):
        replay.invoke(PROMPT, agent="planner", stage="stop_rationale")
    assert replay.invoke(PROMPT, agent="planner", stage="preflight").text == "recorded"
    with pytest.raises(LLMError, match=r"all 1 recorded answer\(s\) for this request were already used"):
        replay.invoke(PROMPT, agent="planner", stage="preflight")


def test_a_broken_cassette_names_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_env(monkeypatch, tmp_path)
    cassette = tmp_path / "c.jsonl"
    cassette.write_text(
        json.dumps({"v": 1, "key": "k", "call": {"agent": "a"}}) + "\n{not json\n", encoding="utf-8"
    )

    with pytest.raises(SpecloopError, match=r"c\.jsonl, line 1: not a cassette entry"):
        get_llm(f"replay:{cassette}")
    with pytest.raises(SpecloopError, match="replay cassette not found"):
        get_llm(f"replay:{tmp_path / 'missing.jsonl'}")
