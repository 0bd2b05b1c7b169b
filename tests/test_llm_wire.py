"""The OpenAI and Anthropic providers against their wire formats served on 127.0.0.1.

The servers here are the test double at the boundary we cannot reach (the providers' APIs):
the real SDKs, through langchain-openai / langchain-anthropic and specloop's providers, talk
HTTP to them. Other ``test_llm_*`` modules import the servers and fixtures from this one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage

from specloop.errors import SpecloopError
from specloop.llm import LLMCall, LLMError, get_llm

OPENAI_KEY = "sk-test-openai-0123456789abcdefXYZ"
ANTHROPIC_KEY = "sk-test-anthropic-0123456789abcdefXYZ"
MODEL = "test-model"

FAST_CONFIG = """
llm_timeout_s = 0.4
llm_max_retries = 2
llm_backoff_initial_s = 0.01
llm_backoff_max_s = 0.05
"""


@dataclass
class Step:
    """One scripted answer: status, JSON body, extra headers, and a delay before answering."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class WireServer:
    """A plain HTTP server on a free loopback port that answers POSTs from a script of steps."""

    def __init__(self, endpoint: str, responder: Callable[[dict[str, Any]], Step] | None = None) -> None:
        self.endpoint = endpoint
        self.responder = responder  # answers from the request body once the scripted steps run out
        self.steps: deque[Step] = deque()
        self.requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if self.path != server.endpoint:
                    step = Step(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                elif server.steps:
                    step = server.steps.popleft()
                elif server.responder is not None:
                    step = server.responder(body)
                else:
                    step = Step(500, {"error": {"message": "test script exhausted", "type": "api_error"}})
                time.sleep(step.delay_s)
                # "{{AUTH}}" in a scripted body echoes the credentials back, as a hostile server might
                auth = " ".join(self.headers.get(h, "") for h in ("authorization", "x-api-key"))
                payload = json.dumps(step.body).replace("{{AUTH}}", auth.strip()).encode()
                try:
                    self.send_response(step.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for name, value in step.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went away, as the test intended

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def root(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def push(self, *steps: Step) -> None:
        self.steps.extend(steps)

    def __enter__(self) -> WireServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the two wire formats -------------------------------------------------------------------


def openai_reply(
    text: str | None = "", tool_calls: list[tuple[str, str, dict]] | None = None, usage=(11, 7)
) -> Step:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for cid, name, args in tool_calls
        ]
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}
        ],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }
    return Step(body=body)


def anthropic_reply(
    text: str | None = "", tool_calls: list[tuple[str, str, dict]] | None = None, usage=(11, 7)
) -> Step:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [
        {"type": "tool_use", "id": cid, "name": name, "input": args} for cid, name, args in tool_calls or []
    ]
    body = {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": "tool_use" if tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }
    return Step(body=body)


def error_step(wire: str, status: int, message: str, headers: dict[str, str] | None = None) -> Step:
    if wire == "openai":
        body: dict[str, Any] = {"error": {"message": message, "type": "error", "code": None}}
    else:
        body = {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
    return Step(status, body, headers or {})


@dataclass
class Wire:
    """A running server for one wire format and the ``llm`` string that points a provider at it."""

    name: str
    server: WireServer
    llm: str
    key: str

    def reply(self, text: str | None = "", tool_calls=None, usage=(11, 7)) -> Step:
        build = openai_reply if self.name == "openai" else anthropic_reply
        return build(text, tool_calls, usage)

    def error(self, status: int, message: str = "slow down", headers: dict[str, str] | None = None) -> Step:
        return error_step(self.name, status, message, headers)

    def auth_of(self, seen: Seen) -> str:
        """The credential headers the SDK sent (Anthropic's SDK uses x-api-key or a bearer token)."""
        return " ".join(seen.headers.get(h, "") for h in ("authorization", "x-api-key"))


def isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user config, no provider variables from the machine running the tests."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in (
        "SPECLOOP_LLM",
        "SPECLOOP_BUDGET_TOKENS",
        "SPECLOOP_BUDGET_USD",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_COMPATIBLE_API_KEY",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_API_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with fast retry settings and planted fake keys in its ``.env``."""
    isolate_env(monkeypatch, tmp_path)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "specloop.toml").write_text(FAST_CONFIG, encoding="utf-8")
    (ws / ".env").write_text(
        f"OPENAI_COMPATIBLE_API_KEY={OPENAI_KEY}\nANTHROPIC_API_KEY={ANTHROPIC_KEY}\n", encoding="utf-8"
    )
    return ws


@pytest.fixture(params=["openai", "anthropic"])
def wire(request: pytest.FixtureRequest) -> Iterator[Wire]:
    if request.param == "openai":
        with WireServer("/v1/chat/completions") as server:
            yield Wire("openai", server, f"openai-compatible:{server.root}/v1:{MODEL}", OPENAI_KEY)
    else:
        with WireServer("/v1/messages") as server:
            yield Wire("anthropic", server, f"anthropic:{MODEL}@{server.root}", ANTHROPIC_KEY)


def get_status(run_dir: str) -> str:
    """Where the DEFT run in ``run_dir`` stands."""
    return f"{run_dir}: iteration 2 of 3"


PROMPT = [SystemMessage("You are the planner."), HumanMessage("Summarise the pre-flight.")]


# --- the tests -----------------------------------------------------------------------------


def test_plain_reply_with_usage(wire: Wire, workspace: Path) -> None:
    calls: list[LLMCall] = []
    llm = get_llm(wire.llm, workspace=workspace, recorder=calls.append)
    wire.server.push(wire.reply("All inputs look fine.", usage=(23, 9)))

    reply = llm.invoke(PROMPT, agent="planner", stage="preflight")

    assert llm.available
    assert reply.text == "All inputs look fine."
    assert reply.usage_metadata is not None
    assert (reply.usage_metadata["input_tokens"], reply.usage_metadata["output_tokens"]) == (23, 9)
    (call,) = calls
    assert (call.agent, call.stage, call.provider, call.model) == (
        "planner",
        "preflight",
        wire.llm.split(":")[0],
        MODEL,
    )
    assert (call.input_tokens, call.output_tokens, call.attempt_count) == (23, 9, 1)
    assert [m["role"] for m in call.messages] == ["system", "user"]
    assert call.latency_s > 0
    (seen,) = wire.server.requests
    assert seen.body["model"] == MODEL
    assert "Summarise the pre-flight." in json.dumps(seen.body["messages"])
    # the key came from the workspace .env and was sent, but was not exported into the environment
    assert wire.key in wire.auth_of(seen)
    assert wire.key not in os.environ.values()


def test_tool_call_round_trip(wire: Wire, workspace: Path) -> None:
    llm = get_llm(wire.llm, workspace=workspace)
    wire.server.push(
        wire.reply(None, tool_calls=[("call_1", "get_status", {"run_dir": "runs/r1"})]),
        wire.reply("Iteration 2 of 3 is running."),
    )

    first = llm.invoke(PROMPT, agent="chat", stage="turn", tools=[get_status])
    assert [(c["name"], c["args"], c["id"]) for c in first.tool_calls] == [
        ("get_status", {"run_dir": "runs/r1"}, "call_1")
    ]
    result = ToolMessage(get_status(**first.tool_calls[0]["args"]), tool_call_id="call_1")
    second = llm.invoke([*PROMPT, first, result], agent="chat", stage="turn", tools=[get_status])

    assert second.text == "Iteration 2 of 3 is running."
    sent_tools = wire.server.requests[0].body["tools"]
    names = [t["function"]["name"] if wire.name == "openai" else t["name"] for t in sent_tools]
    assert names == ["get_status"]
    messages = json.dumps(wire.server.requests[1].body["messages"])
    assert "runs/r1: iteration 2 of 3" in messages and "call_1" in messages
    kind = '"tool_call_id"' if wire.name == "openai" else '"tool_result"'
    assert kind in messages


def test_rate_limit_then_success_is_retried(wire: Wire, workspace: Path) -> None:
    calls: list[LLMCall] = []
    llm = get_llm(wire.llm, workspace=workspace, recorder=calls.append)
    wire.server.push(wire.error(429, headers={"retry-after-ms": "20"}), wire.reply("ok"))

    assert llm.invoke(PROMPT, agent="planner", stage="preflight").text == "ok"

    assert len(wire.server.requests) == 2
    assert calls[0].attempt_count == 2


def test_rate_limit_that_persists_is_a_clean_error(wire: Wire, workspace: Path) -> None:
    llm = get_llm(wire.llm, workspace=workspace)
    wire.server.push(*[wire.error(429, headers={"retry-after": "0"}) for _ in range(3)])

    with pytest.raises(LLMError) as err:
        llm.invoke(PROMPT, agent="reviewer", stage="rca")

    assert isinstance(err.value, SpecloopError)
    text = str(err.value)
    assert "agent 'reviewer'" in text and "stage 'rca'" in text and "3 attempt(s)" in text
    assert len(wire.server.requests) == 3  # 1 + llm_max_retries


def test_timeout_then_success(wire: Wire, workspace: Path) -> None:
    calls: list[LLMCall] = []
    llm = get_llm(wire.llm, workspace=workspace, recorder=calls.append)
    slow = wire.reply("too late")
    slow.delay_s = 1.5
    wire.server.push(slow, wire.reply("in time"))

    assert llm.invoke(PROMPT, agent="reporter", stage="report").text == "in time"

    assert calls[0].attempt_count == 2
    assert calls[0].latency_s >= 0.4  # the timed-out attempt counts in the call's latency


def test_timeout_every_time_is_a_clean_error(wire: Wire, workspace: Path) -> None:
    llm = get_llm(wire.llm, workspace=workspace)
    for _ in range(3):
        step = wire.reply("too late")
        step.delay_s = 1.0
        wire.server.push(step)

    with pytest.raises(
        LLMError, match=r"agent 'reporter' at stage 'report' failed after 3 attempt\(s\).*Timeout"
    ):
        llm.invoke(PROMPT, agent="reporter", stage="report")


def test_bad_request_is_not_retried(wire: Wire, workspace: Path) -> None:
    llm = get_llm(wire.llm, workspace=workspace)
    wire.server.push(wire.error(400, "model does not exist"))

    with pytest.raises(LLMError, match=r"1 attempt\(s\).*model does not exist"):
        llm.invoke(PROMPT, agent="planner", stage="preflight")
    assert len(wire.server.requests) == 1


def test_backoff_follows_the_servers_retry_after_hint(wire: Wire) -> None:
    import anthropic
    import openai
    from tenacity import RetryCallState

    from specloop.llm.chat_models import RetryPolicy, is_retryable, retry_after_s

    wire.server.push(wire.error(429, headers={"retry-after-ms": "250"}), wire.error(429))
    ask = [{"role": "user", "content": "hi"}]
    caught: list[Exception] = []
    for _ in range(2):
        try:
            if wire.name == "openai":
                client = openai.OpenAI(base_url=f"{wire.server.root}/v1", api_key="x", max_retries=0)
                client.chat.completions.create(model=MODEL, messages=ask)
            else:
                client = anthropic.Anthropic(base_url=wire.server.root, api_key="x", max_retries=0)
                client.messages.create(model=MODEL, max_tokens=10, messages=ask)
        except (openai.RateLimitError, anthropic.RateLimitError) as exc:
            caught.append(exc)
    hinted, unhinted = caught

    assert is_retryable(hinted) and retry_after_s(hinted) == 0.25 and retry_after_s(unhinted) is None
    policy = RetryPolicy(max_retries=3, initial_s=2.0, max_s=10.0)
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
    state.set_exception((type(hinted), hinted, hinted.__traceback__))
    assert policy.wait(state) == 0.25
    state.set_exception((type(unhinted), unhinted, unhinted.__traceback__))
    state.attempt_number = 3
    assert 0.75 * 8.0 <= policy.wait(state) <= 8.0  # 2 s doubled per attempt, with jitter
