"""`specloop chat` creates a project: the intent parser reads "create a project that …" (English and
Chinese) and answers to the gate's questions ("Q1 a", "1a 2b"); a scripted terminal session creates
the digits project from a sentence (gate with questions → "Q1 a" → "go" → built, verified, reviewed);
an infeasible requirement refuses "go" until a person answers the question that decides it."""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path
from typing import Any

import pytest
from create_fixtures import cpu_torch_constraint
from test_chat import Terminal
from test_llm_wire import MODEL, Step, WireServer, isolate_env, openai_reply

from specloop.agents.chat_intents import ANSWER, APPROVE, CREATE, REPORT, START_RUN, STATUS, parse_intent
from specloop.graph.chat import ChatSession
from specloop.graph.chat_runner import ChatEvent, GateReached
from specloop.ledger import loop_log
from specloop.ledger.transcript import read_entries, verify_chain
from specloop.pipelines import get_pipeline
from specloop.skills.scaffold.requirements_md import read_requirements_md
from specloop.skills.scaffold.tasks import read_build_records, verify_build_log

DIGITS = "create a project that recognises handwritten digits on a laptop CPU"
LLM_DOCS = "Fine-tune a ChatGPT-like model on our company docs and deploy it by Friday"
GATE_TIMEOUT = 120
CREATE_TIMEOUT = 1500


# --- the intent parser ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "action", "args"),
    [
        (DIGITS, CREATE, {"requirement": DIGITS}),
        (
            "Make me a model that sorts customer reviews into positive and negative",
            CREATE,
            {"requirement": "Make me a model that sorts customer reviews into positive and negative"},
        ),
        (
            "please build a small handwritten digit recogniser into ~/projects/digits",
            CREATE,
            {
                "requirement": "please build a small handwritten digit recogniser",
                "out": "HOME/projects/digits",
            },
        ),
        (
            "I need a model that detects AOI change defects against golden images",
            CREATE,
            {"requirement": "I need a model that detects AOI change defects against golden images"},
        ),
        (LLM_DOCS, CREATE, {"requirement": LLM_DOCS}),
        (
            "帮我做一个手写数字识别的小模型，能在笔记本CPU上跑就行。",
            CREATE,
            {"requirement": "帮我做一个手写数字识别的小模型，能在笔记本CPU上跑就行。"},
        ),
        (
            "创建一个项目，对电商评论做情感分类，放在 ./reviews",
            CREATE,
            {"requirement": "创建一个项目，对电商评论做情感分类", "out": "CWD/reviews"},
        ),
        ("我想训练一个垃圾短信分类模型", CREATE, {"requirement": "我想训练一个垃圾短信分类模型"}),
        ("做一个AI系统，提高我们工厂的效率", CREATE, {"requirement": "做一个AI系统，提高我们工厂的效率"}),
        ("Q1 a", ANSWER, {"answers": {"Q1": "a"}}),
        ("Q2: b", ANSWER, {"answers": {"Q2": "b"}}),
        ("1a 2b", ANSWER, {"answers": {"Q1": "a", "Q2": "b"}}),
        ("q1=a, q3=c", ANSWER, {"answers": {"Q1": "a", "Q3": "c"}}),
        ("Q1 a and Q4 b.", ANSWER, {"answers": {"Q1": "a", "Q4": "b"}}),
        ("question 2 is d", ANSWER, {"answers": {"Q2": "d"}}),
        ("answers: 1) a 2) c", ANSWER, {"answers": {"Q1": "a", "Q2": "c"}}),
        ("问题1选a", ANSWER, {"answers": {"Q1": "a"}}),
        ("Q1 z", ANSWER, {"answers": {"Q1": "z"}}),  # the action names the valid options
        ("go", APPROVE, {}),
        ("好的", APPROVE, {}),
        ("开始。", APPROVE, {}),
        ("现在什么状态", STATUS, {}),
        ("给我看报告", REPORT, {}),
        # not requests to create a project
        (
            "run the DEFT loop on ~/ws with 2 iterations",
            START_RUN,
            {"workspace": "HOME/ws", "max_iterations": 2},
        ),
        ("make a new run on ~/ws", START_RUN, {"workspace": "HOME/ws"}),
        ("show me the report", REPORT, {}),
    ],
)
def test_parser_understands_create_requests_and_answers(
    message: str, action: str, args: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cwd = tmp_path / "here"
    intent = parse_intent(message, cwd=cwd)
    expected = json.loads(
        json.dumps(args).replace("HOME", str(tmp_path / "home")).replace("CWD", str(cwd)), object_hook=dict
    )
    assert (intent.action, intent.args) == (action, expected)
    assert intent.said.startswith("Understood") or action in (STATUS, REPORT)


@pytest.mark.parametrize("message", ["make it better", "train the baseline", "what is Q1?", "Q1", "create"])
def test_parser_does_not_take_these_for_a_project_or_an_answer(message: str, tmp_path: Path) -> None:
    assert parse_intent(message, cwd=tmp_path).action not in (CREATE, ANSWER)


def test_parser_says_which_project_and_folder(tmp_path: Path) -> None:
    intent = parse_intent("Create a project that classifies spam into /data/spam", cwd=tmp_path)
    assert (
        intent.said
        == "Understood: create a project in /data/spam from “Create a project that classifies spam”."
    )


# --- at the gate, in process -------------------------------------------------------------------


def _gate(events: queue.Queue[ChatEvent]) -> GateReached:
    event = events.get(timeout=GATE_TIMEOUT)
    assert isinstance(event, GateReached), event
    return event


def test_infeasible_requirement_refuses_go_until_a_person_answers(tmp_path: Path) -> None:
    events: queue.Queue[ChatEvent] = queue.Queue()
    out = tmp_path / "llm"
    with ChatSession(workspace=None, llm="offline", notify=events.put) as session:
        assert session.say("Q1 a")[-1]["text"].startswith("There is no create run waiting at the gate")
        turns = session.say(f"{LLM_DOCS} into {out}")
        assert turns[-1]["text"].startswith(f"Started create run llm in {out}.")
        gate = _gate(events)
        assert gate.title == "Requirements"
        assert (
            "**Not feasible here as it stands:** fine-tuning or training a large language model"
            in gate.summary
        )
        assert (
            "**Q1** This machine cannot fine-tune" in gate.summary
            and "needs a person's answer" in gate.summary
        )
        assert "a person must answer Q1" in gate.question
        refused = session.say("go")[-1]["text"]
        assert refused.startswith("Not yet: as it stands this cannot be built here")
        assert "A person must answer: Q1 This machine cannot fine-tune" in refused
        assert "a) Text classification (English and Chinese) (text_classification) (recommended)" in refused
        assert session.say("Q7 a")[-1]["text"] == (
            "There is no open question Q7; the open questions are Q1, Q2, Q3, Q4. Nothing recorded."
        )
        assert session.say("Q1 z")[-1]["text"].startswith("Q1 has no option 'z'; its options are a) Text")
        kept = session.say("Q1 e")[-1]["text"]
        assert kept.startswith("Noted: Q1 → e (None of these: keep the original goal")
        assert "with these answers it still cannot be built here" in kept
        assert session.say("go")[-1]["text"].startswith("Not yet: with these answers it still cannot")
        status = session.say("status")[-1]["text"]
        assert status.startswith(
            "Create run llm (project chatgpt_project, not written yet) is waiting at the gate."
        )
        assert "Answered here: Q1 → e. Still open: Q2, Q3, Q4." in status
        chosen = session.say("Q1 a")[-1]["text"]
        assert chosen.startswith("Noted: Q1 → a (Text classification (English and Chinese)")
        assert "Still open: Q2, Q3, Q4. Answer them, or say “go”" in chosen
        assert "creates a project; it has no iterations" in session.say("explain iteration 2")[-1]["text"]
    state = json.loads((out / "create_state.json").read_text())
    assert state["approval"] is None and state["status"] == "pending"
    assert [e["stage"] for e in loop_log.read_entries(out / "loop_log.jsonl")] == ["requirements"]
    assert not (out / "chatgpt_project").exists() and not (out / "tech.md").exists()  # no code
    transcript = read_entries(out / "transcript.jsonl")
    assert verify_chain(transcript) == []
    said = [e["data"]["text"] for e in transcript if e["kind"] == "chat" and e["data"]["role"] == "user"]
    assert said == [
        "Q1 a",
        f"{LLM_DOCS} into {out}",
        "go",
        "Q7 a",
        "Q1 z",
        "Q1 e",
        "go",
        "status",
        "Q1 a",
        "explain iteration 2",
    ]
    assert {e["iter"] for e in transcript if e["kind"] == "chat"} == {"framework"}


def test_model_creates_and_answers_by_tool_calling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chat model passes the requirement verbatim and only the person's answers; it never approves."""
    isolate_env(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    requirement = "帮我做一个手写数字识别的小模型，能在笔记本CPU上跑就行。"
    replies = [
        openai_reply(None, [("call_1", "create_project", {"requirement": requirement})]),
        openai_reply("它会先停在审批处，列出问题。"),
        openai_reply(None, [("call_2", "answer_questions", {"answers": {"1": "a", "Q3": "b"}})]),
        openai_reply("记下了：Q1 → a，Q3 → b。"),
    ]

    def answer(body: dict[str, Any]) -> Step:
        return replies.pop(0) if body.get("tools") else openai_reply("requirements look fine")

    events: queue.Queue[ChatEvent] = queue.Queue()
    with WireServer("/v1/chat/completions", responder=answer) as server:
        llm = f"openai-compatible:{server.root}/v1:{MODEL}"
        with ChatSession(workspace=None, llm=llm, notify=events.put) as session:
            turns = session.say(requirement)
            assert turns[1]["text"].startswith("Started create run handwritten_digit_recognizer_create")
            gate = _gate(events)
            assert "**Q1** Where will the training data come from?" in gate.summary
            turns = session.say("第一题选a，第三题选b")
            noted = next(t["text"] for t in turns if t["role"] == "tool")
            assert noted.startswith(
                "Noted: Q1 → a (No data yet: start from the family's offline mini dataset); "
                "Q3 → b (A Docker image). Still open: Q2, Q4."
            )
            run = session.run_dir
            assert run is not None
    chat_requests = [r.body for r in server.requests if r.body.get("tools")]
    names = {t["function"]["name"] for t in chat_requests[0]["tools"]}
    assert {"create_project", "answer_questions", "approve"} <= names
    state = json.loads((run / "create_state.json").read_text())
    assert state["config"]["requirement"] == requirement and state["config"]["options"]["llm"] == llm
    assert state["approval"] is None  # the model was not told to approve, and did not


# --- a scripted terminal session creates the digits project ------------------------------------------


def _expect_all(term: Terminal, *texts: str, timeout: float = GATE_TIMEOUT) -> None:
    """Wait until every text has been said, in any order."""
    deadline = time.monotonic() + timeout
    while not all(any(t in line for line in term.seen) for t in texts):
        try:
            line = term.lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            missing = [t for t in texts if not any(t in seen for seen in term.seen)]
            raise AssertionError(f"never said {missing}; the session said:\n{''.join(term.seen)[-4000:]}")
        term.seen.append(line)


@pytest.mark.slow
def test_scripted_chat_creates_the_digits_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for name, value in cpu_torch_constraint("image_classification", tmp_path).items():
        monkeypatch.setenv(name, value)  # the target venv (env_check) takes this machine's CPU wheel
    term = Terminal(home=home)
    try:
        term.say(DIGITS)
        # the answer to the message and the gate come from two threads, in either order
        _expect_all(
            term,
            f"Understood: create a project from “{DIGITS}”",
            "Started create run handwritten_digits_recognizer_create",
            "Requirements",
            "Feasible here.",
            "Q1 Where will the training data come from?",
            "a) No data yet: start from the family's offline mini dataset (recommended)",
            "Q4 Which metric decides whether the model is good enough?",
            "Answer with e.g. “Q1 a” (several at once: “1a 2b”), then say “go”; “go” alone takes",
        )
        run = home / "handwritten_digits_recognizer_create"
        term.say("Q1 a")
        term.expect(
            "Noted: Q1 → a (No data yet: start from the family's offline mini dataset). Still open: Q2"
        )
        term.say("what's the status")
        term.expect(
            f"Create run {run.name} (project handwritten_digits_recognizer, not written yet) is waiting"
        )
        term.say("go")
        term.expect(
            f"Approved {run.name} (recorded as approved by chat; your answers: Q1 → a; recommended options "
            "taken as assumptions for Q2, Q3, Q4)"
        )
        term.say("status")
        term.expect(f"Create run {run.name} (project ")  # named once the gate's answers are written
        assert "is running; " in term.seen[-1]
        term.expect(
            f"Run {run.name} ended: created {run / 'handwritten_digits_recognizer'}", timeout=CREATE_TIMEOUT
        )
        term.expect("Ask for “the report” or “status”")
        term.say("status")
        term.expect("has finished: the project is created")
        term.say("show me the report")
        line = term.expect("Build log: 6 of 6 tasks passed their acceptance command, 6 of 6 passed again")
        assert "every [x] has a passing record. Review: PASS, " in line
        term.expect("REVIEW_REPORT.md")
        line = term.expect("verify_tasks")
        assert "all 6 acceptance commands pass again" in line
        term.say("quit")
        assert term.close() == 0
    finally:
        term.proc.kill()

    state = json.loads((run / "create_state.json").read_text())
    assert state["approval"]["by"] == "chat" and state["status"] == "complete"
    assert state["stop"] is None or state["stop"].get("reason") != "hard_stop"
    entries = loop_log.read_entries(run / "loop_log.jsonl")
    pipeline = get_pipeline("create")
    assert [e["stage"] for e in entries] == [*pipeline.order("framework"), *pipeline.order("target")]
    assert entries[1]["summary"].startswith("approved by chat; 1 answer(s)")
    # Q1 is the person's answer; the questions left open are recorded as assumptions
    req = read_requirements_md(run / "requirements.md")
    kinds = {c.question: c.kind for c in req.clarifications if c.question}
    assert kinds == {"Q1": "answer", "Q2": "assumption", "Q3": "assumption", "Q4": "assumption"}
    # the project's build log and review pass
    records = read_build_records(run / "PROJECT_BUILD_LOG.md")
    assert records and all(r.ok for r in records) and verify_build_log(run / "PROJECT_BUILD_LOG.md") == []
    assert "**PASS**" in (run / "REVIEW_REPORT.md").read_text()
    transcript = read_entries(run / "transcript.jsonl")
    assert verify_chain(transcript) == []
    said = [e["data"]["text"] for e in transcript if e["kind"] == "chat" and e["data"]["role"] == "user"]
    assert said == [DIGITS, "Q1 a", "what's the status", "go", "status", "status", "show me the report"]
    approvals = [e["data"] for e in transcript if e["kind"] == "approval"]
    assert [(a["by"], a["answers"]) for a in approvals] == [("chat", {"Q1": "a"})]
