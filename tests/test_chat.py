"""`specloop chat`: the offline intent parser, the answers it composes from a run's ledger, the stop
request the planner honours, a scripted terminal session on the tiny workspace (start from a
sentence, the gate, status, close and reopen at the gate, go, stop after this iteration, report),
and a chat model choosing the same actions by tool calling against a loopback server."""

# ruff: noqa: F811  (fixtures imported from test_report are redefined as arguments)

from __future__ import annotations

import json
import os
import queue
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import pytest
from test_llm_wire import MODEL, Step, WireServer, isolate_env, openai_reply
from test_report import full_run  # noqa: F401

from specloop.agents.chat_answers import AT_GATE, explain_iteration, report_text, run_status
from specloop.agents.chat_intents import (
    APPROVE,
    EXPLAIN,
    HELP,
    QUIT,
    REPORT,
    START_RUN,
    STATUS,
    STOP_AFTER,
    parse_intent,
)
from specloop.agents.context import RunContext
from specloop.agents.planner import Planner
from specloop.graph.chat import ChatSession
from specloop.graph.chat_runner import ChatEvent, GateReached
from specloop.ledger import loop_log
from specloop.ledger.requests import request_stop, stop_request
from specloop.ledger.state import new_state, save
from specloop.ledger.transcript import read_entries, verify_chain

# --- the intent parser ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "action", "args"),
    [
        (
            "run the DEFT loop on ~/ws with 2 iterations and a 0.5% target",
            START_RUN,
            {"workspace": "HOME/ws", "max_iterations": 2, "far_target_percent": 0.5},
        ),
        (
            "Start a run on ./ws with one iteration, 2 epochs and a FAR target of 1 percent.",
            START_RUN,
            {"workspace": "CWD/ws", "max_iterations": 1, "epochs": 2, "far_target_percent": 1.0},
        ),
        ("kick off the loop on '/data/my ws'", START_RUN, {"workspace": "/data/my ws"}),
        ("what's the status", STATUS, {}),
        ("What’s the status?", STATUS, {}),
        ("how is it going?", STATUS, {}),
        ("show me the report", REPORT, {}),
        ("where are the results", REPORT, {}),
        ("why did iteration 2 get worse", EXPLAIN, {"iteration": "2"}),
        ("what went wrong in iter3?", EXPLAIN, {"iteration": "3"}),
        ("explain the baseline", EXPLAIN, {"iteration": "baseline"}),
        ("why did it get worse", EXPLAIN, {"iteration": "latest"}),
        ("go", APPROVE, {}),
        ("Yes, please", APPROVE, {}),
        ("stop after this iteration", STOP_AFTER, {}),
        ("please stop once this round is done", STOP_AFTER, {}),
        ("make this the last iteration", STOP_AFTER, {}),
        ("quit", QUIT, {}),
        ("help", HELP, {}),
    ],
)
def test_parser_understands(
    message: str, action: str, args: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cwd = tmp_path / "here"
    intent = parse_intent(message, cwd=cwd)
    expected = {
        k: v.replace("HOME", str(tmp_path / "home")).replace("CWD", str(cwd)) if isinstance(v, str) else v
        for k, v in args.items()
    }
    assert (intent.action, intent.args) == (action, expected)


def test_parser_says_what_it_understood(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", "/home/x")
    intent = parse_intent("run the DEFT loop on ~/ws with 2 iterations and a 0.5% target", cwd=tmp_path)
    assert intent.said == "Understood: run the DEFT loop on /home/x/ws, 2 iterations, target FAR < 0.5%."
    defaults = parse_intent("run the deft loop", default_workspace=Path("/srv/ws"), cwd=tmp_path)
    assert defaults.args == {"workspace": "/srv/ws"}
    assert defaults.said == (
        "Understood: run the DEFT loop on /srv/ws, 3 iterations (the default), target FAR < 1% (the default)."
    )


@pytest.mark.parametrize(
    ("message", "question"),
    [
        ("run the DEFT loop", "Which workspace"),
        ("run the loop on ~/ws with a 2% or 1% target", "which one is the FAR target?"),
        ("run the deft loop on ~/ws with target 0.5", "Did you mean a FAR target of 0.5%?"),
        ("run the deft loop on ~/ws with 0 iterations", "at least 1 iteration"),
        ("run the deft loop on ~/ws with a 150% target", "not a rate"),
        ("stop", "Stop how?"),
        ("abort", "Stop how?"),
        ("make it better", "I did not understand “make it better”"),
        ("delete the old results", "I did not understand"),
        ("what's the weather like", "I did not understand"),
        ("", "Say what you would like to do"),
    ],
)
def test_parser_asks_back_when_it_does_not_understand(message: str, question: str, tmp_path: Path) -> None:
    intent = parse_intent(message, cwd=tmp_path)
    assert intent.action is None and intent.args == {}
    assert question in intent.said
    assert not intent.said.startswith("Understood")


# --- answers from the ledger --------------------------------------------------------------------


def _worse_iter2(full_run: Path, tmp_path: Path) -> Path:
    """The report fixture's run with iteration 2 one false alarm worse than iteration 1."""
    run = tmp_path / full_run.name
    shutil.copytree(full_run, run)
    state = json.loads((run / "deft_state.json").read_text())
    state["iterations"]["iter2"]["kpi_far"] = 2 / 45
    save(run, state)
    return run


def test_explain_why_an_iteration_got_worse(full_run: Path, tmp_path: Path) -> None:
    import pandas as pd

    run = _worse_iter2(full_run, tmp_path)
    text = explain_iteration(run, "2")
    state = json.loads((run / "deft_state.json").read_text())
    rec = state["iterations"]["iter2"]
    assert text.startswith("iter2 got worse: KPI FAR@100%R 2.22% → 4.44% (+2.22 pp) (target < 1.0%).")
    assert "Holdout FAR 4.44% → 2.22%." in text
    targets = rec["targets_by_label"]
    assert f"It targeted {sum(targets.values())} weak KPI rows from the iter1 RCA" in text
    gaps = pd.read_parquet(run / "iter1" / "rca_results" / "kpi_gaps.parquet")
    boards = Counter(gaps[gaps["selected"]]["boardname"])
    top_board, n = sorted(boards.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    assert f"by board: {top_board} {n}" in text
    assert f"It added {rec['rows_added']['mining_pool']} mined from the pool, 2 synthetic rows" in text
    assert f"Mining kept {rec['mining']['kept']} of {rec['mining']['candidates']} candidates" in text
    assert "The loop keeps the best model, iter1 (2.22%)" in text
    assert "The loop stopped here: the iteration limit was reached." in text
    assert explain_iteration(run, "latest") == text
    assert explain_iteration(run, "1").startswith("iter1 improved: KPI FAR@100%R 6.67% → 2.22% (-4.44 pp)")
    assert (
        explain_iteration(run, "7")
        == f"There is no iter7 in {run.name} (iterations so far: baseline, iter1, iter2)."
    )


def test_status_and_report_answers(full_run: Path) -> None:
    status = run_status(full_run, "finished")
    assert status.startswith(f"Run {full_run.name} on ")
    assert "has finished (the iteration limit was reached)" in status
    assert "KPI FAR@100%R so far: baseline 6.67% → iter1 2.22% → iter2 2.22%; best iter1" in status
    assert "waiting for your approval" in run_status(full_run, AT_GATE)
    report = report_text(full_run)
    assert report.startswith("There is no report yet")
    assert "| **iter1** (best) | 2.22% |" in report


def test_planner_stops_when_a_stop_was_requested(tmp_path: Path) -> None:
    run = tmp_path / "run_1"
    run.mkdir()
    save(run, new_state(run_dir=run, workspace=tmp_path, kpi_target="FAR < 1%", max_iterations=3, config={}))
    rca = {
        "far_at_100_recall": 0.2,
        "far_target": 0.01,
        "kpi_met": False,
        "n_selected": 4,
        "selected_by_label": {"bridge": 4},
    }
    planner = Planner(RunContext.open(run, tmp_path))
    assert planner.decide("baseline", rca)["reason"] == "continue"
    assert stop_request(run) is None
    request_stop(run, by="chat")
    decision = planner.decide("iter1", rca)
    assert decision["stop"] is True and decision["reason"] == "stop_requested"
    assert decision["requested_by"] == "chat" and "Stop requested in chat" in decision["rationale"]
    # the KPI, when met, is still the reason a run stops
    assert planner.decide("iter1", {**rca, "kpi_met": True, "far_at_100_recall": 0.0})["reason"] == "kpi_met"


# --- a scripted terminal session -------------------------------------------------------------------


class Terminal:
    """`specloop chat` in a subprocess, its stdin a pipe; `expect` waits for a line containing text."""

    def __init__(self, *args: str, home: Path) -> None:
        env = {**os.environ, "HOME": str(home), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "specloop", "chat", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=home,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def expect(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; the session said:\n{''.join(self.seen)[-4000:]}")

    def close(self, timeout: float = 60) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout)
        while (line := self.lines.get(timeout=5)) is not None:
            self.seen.append(line)
        return code


def test_scripted_chat_session_from_a_sentence_to_the_report(tiny_workspace: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(tiny_workspace, home / "ws")
    term = Terminal(home=home)
    try:
        term.say("run the DEFT loop on ~/ws with 1 iteration, 1 epoch and a 0.5% target")
        understood = term.expect("Understood:")
        assert (
            f"run the DEFT loop on {home / 'ws'}, 1 iteration, target FAR < 0.5%, 1 baseline epoch."
            in understood
        )
        term.expect("Pre-flight summary")
        term.expect("Approve this DEFT run? Say “go” to start it.")
        (run,) = sorted((home / "ws" / "results").glob("run_*"))
        term.say("what's the status")
        term.expect(f"Run {run.name} on {home / 'ws'} is waiting for your approval at the gate")
        term.say("quit")
        term.expect(f"Closed. Reopen this run with: specloop chat --resume {run}")
        assert term.close() == 0
    finally:
        term.proc.kill()
    # closed at the gate: nothing ran after pre-flight, the conversation is in the run's record
    assert [e["stage"] for e in loop_log.read_entries(run / "loop_log.jsonl")] == ["preflight"]
    state = json.loads((run / "deft_state.json").read_text())
    assert state["approval"] is None
    options = state["config"]["options"]
    assert (options["far_target"], options["max_iterations"], options["epochs"], options["llm"]) == (
        0.005,
        1,
        1,
        "offline",
    )

    term = Terminal("--resume", str(run), home=home)
    try:
        term.expect("(earlier) you › run the DEFT loop on ~/ws with 1 iteration")
        term.expect(f"Reopened {run.name}, waiting at the gate.")
        term.expect("Approve this DEFT run?")
        term.say("go")
        term.expect(f"Approved {run.name} (recorded as approved by chat)")
        term.say("stop after this iteration")
        term.expect(f"Noted (stop_request.json): {run.name} stops after the baseline's RCA")
        term.say("status")
        term.expect(f"Run {run.name} on {home / 'ws'} is running the baseline")
        term.expect(f"Run {run.name} ended:", timeout=400)
        term.say("show me the report")
        term.expect(f"The report is {run / 'DEFT_Loop_Report.html'}")
        term.expect("baseline (best)")
        term.say("why did the baseline do so badly?")
        term.expect("The baseline was trained and scored KPI FAR@100%R")
        term.say("quit")
        assert term.close() == 0
    finally:
        term.proc.kill()

    state = json.loads((run / "deft_state.json").read_text())
    assert state["approval"]["by"] == "chat" and state["status"] == "complete"
    assert state["stop"]["reason"] in ("stop_requested", "kpi_met")
    entries = loop_log.read_entries(run / "loop_log.jsonl")
    stages = [(e["iter"], e["stage"]) for e in entries]
    assert stages[:3] == [("baseline", "preflight"), ("baseline", "approval_gate"), ("baseline", "train")]
    assert stages[-1] == ("final", "loop_stop") and not any(it.startswith("iter") for it, _ in stages)
    assert entries[1]["summary"] == "approved by chat"
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    transcript = read_entries(run / "transcript.jsonl")
    assert verify_chain(transcript) == []
    said = [e["data"]["text"] for e in transcript if e["kind"] == "chat" and e["data"]["role"] == "user"]
    assert said == [
        "run the DEFT loop on ~/ws with 1 iteration, 1 epoch and a 0.5% target",
        "what's the status",
        "go",
        "stop after this iteration",
        "status",
        "show me the report",
        "why did the baseline do so badly?",
    ]
    approvals = [e for e in transcript if e["kind"] == "approval"]
    assert [e["data"]["by"] for e in approvals] == ["chat"]
    if state["stop"]["reason"] == "stop_requested":
        decision = state["iterations"]["baseline"]["decision"]
        assert decision["requested_by"] == "chat" and "requested in chat" in decision["rationale"]
    with sqlite3.connect(run / "checkpoints.sqlite") as db:
        threads = {t for (t,) in db.execute("select distinct thread_id from checkpoints")}
    assert threads == {run.name, f"{run.name}:chat"}


# --- a chat model choosing the actions ----------------------------------------------------------------


def test_model_chooses_the_actions_by_tool_calling(
    tiny_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_env(monkeypatch, tmp_path)
    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace, ws)
    chat_replies = deque(
        [
            openai_reply(
                None,
                [
                    (
                        "call_1",
                        "start_run",
                        {"workspace": str(ws), "max_iterations": 1, "epochs": 2, "far_target_percent": 0.5},
                    )
                ],
            ),
            openai_reply("Started; it stops at the gate for your approval."),
            openai_reply(
                None,
                [
                    ("call_2", "status", {}),
                    ("call_3", "explain_iteration", {"iteration": "1", "verbose": True}),
                ],
            ),
            openai_reply("It is waiting for your approval at the gate."),
        ]
    )

    def answer(body: dict[str, Any]) -> Step:
        # the chat sends tools; the run's own agents (pre-flight narrative) do not
        return (
            chat_replies.popleft()
            if body.get("tools")
            else openai_reply("The data looks ready for a baseline.")
        )

    events: queue.Queue[ChatEvent] = queue.Queue()
    with WireServer("/v1/chat/completions", responder=answer) as server:
        llm = f"openai-compatible:{server.root}/v1:{MODEL}"
        with ChatSession(workspace=None, llm=llm, notify=events.put) as session:
            turns = session.say("kick things off on my workspace, one iteration, two epochs, half a percent")
            assert [t["role"] for t in turns] == ["assistant", "tool", "assistant"]
            assert turns[0]["tool_calls"][0]["name"] == "start_run"
            assert turns[1]["text"].startswith("Started run_")
            assert turns[2]["text"] == "Started; it stops at the gate for your approval."
            gate = events.get(timeout=120)
            assert isinstance(gate, GateReached) and "# Pre-Flight Summary" in gate.summary
            turns = session.say("how is it going?")
            results = {t["name"]: t["text"] for t in turns if t["role"] == "tool"}
            assert "is waiting for your approval at the gate" in results["status"]
            assert "does not take these arguments" in results["explain_iteration"]
            run = session.run_dir
            assert run is not None
    chat_requests = [r.body for r in server.requests if r.body.get("tools")]
    assert len(chat_requests) == 4
    for body in chat_requests:
        assert {t["function"]["name"] for t in body["tools"]} == {
            "start_run",
            "create_project",
            "answer_questions",
            "status",
            "report",
            "explain_iteration",
            "approve",
            "stop_after_iteration",
        }
    tool_results = [m for m in chat_requests[1]["messages"] if m["role"] == "tool"]
    assert tool_results[0]["tool_call_id"] == "call_1" and f"Started {run.name}" in tool_results[0]["content"]
    state = json.loads((run / "deft_state.json").read_text())
    options = state["config"]["options"]
    assert (options["max_iterations"], options["far_target"], options["epochs"], options["llm"]) == (
        1,
        0.005,
        2,
        llm,
    )
    assert state["approval"] is None  # the model was never told to approve, and did not
    transcript = read_entries(run / "transcript.jsonl")
    assert verify_chain(transcript) == []
    assert [e["data"]["text"] for e in transcript if e["kind"] == "chat" and e["data"]["role"] == "user"] == [
        "kick things off on my workspace, one iteration, two epochs, half a percent",
        "how is it going?",
    ]
    chat_calls = [e for e in transcript if e["kind"] == "model_call" and e["agent"] == "chat"]
    assert len(chat_calls) == 4 and all(c["data"]["input_tokens"] == 11 for c in chat_calls)

    # reopened later: the conversation comes back from the run's checkpointer, and the gate with it
    with ChatSession(workspace=None, llm=None, notify=events.put) as session:
        reopened = session.reopen(run)
        assert isinstance(reopened.event, GateReached)
        assert [t["text"] for t in reopened.history if t["role"] == "user"] == [
            "kick things off on my workspace, one iteration, two epochs, half a percent",
            "how is it going?",
        ]
        turns = session.say("status")
        assert "is waiting for your approval at the gate" in turns[-1]["text"]


def test_offline_session_go_too_early_and_a_second_run(tiny_workspace: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace, ws)
    events: queue.Queue[ChatEvent] = queue.Queue()
    with ChatSession(workspace=ws, llm="offline", notify=events.put) as session:
        assert session.say("go")[-1]["text"].startswith("There is no run waiting for approval.")
        turns = session.say("run the deft loop with 1 iteration")
        assert turns[0]["text"].startswith(
            f"Understood: run the DEFT loop on {ws}, 1 iteration, target FAR < 1%"
        )
        first = session.run_dir
        assert first is not None
        assert session.say("go")[-1]["text"].startswith("Nothing to approve yet: ")  # pre-flight still runs
        assert isinstance(events.get(timeout=120), GateReached)
        turns = session.say(f"start another run on {ws} with 2 iterations")
        second = session.run_dir
        assert second is not None and second != first
        assert f"{first.name} stays as it was" in turns[-1]["text"]
        assert isinstance(events.get(timeout=120), GateReached)
        assert f"Run {second.name} on {ws} is waiting" in session.say("status")[-1]["text"]
        assert session.say("stop")[-1]["text"].startswith("Stop how?")
    for run in (first, second):
        state = json.loads((run / "deft_state.json").read_text())
        assert state["approval"] is None and state["status"] == "pending"
        assert verify_chain(read_entries(run / "transcript.jsonl")) == []
    said = [e["data"]["text"] for e in read_entries(second / "transcript.jsonl") if e["kind"] == "chat"]
    assert said[0] == f"start another run on {ws} with 2 iterations" and said[-1].startswith("Stop how?")
    with ChatSession(workspace=None, llm="offline", notify=events.put) as session:
        history = session.reopen(second).history  # the whole conversation that led to the second run
        assert [t["text"] for t in history if t["role"] == "user"] == [
            "go",
            "run the deft loop with 1 iteration",
            "go",
            f"start another run on {ws} with 2 iterations",
            "status",
            "stop",
        ]
