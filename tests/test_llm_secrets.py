"""Planted fake keys never reach an LLMCall, a cassette, an exception or a log line."""

# ruff: noqa: F811  (pytest fixtures imported from test_llm_wire are redefined as arguments)

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from test_llm_wire import ANTHROPIC_KEY, OPENAI_KEY, PROMPT, Wire, wire, workspace  # noqa: F401

from specloop.ledger.redaction import MASK, collect_secrets, redact, redact_obj
from specloop.llm import LLMCall, LLMError, get_llm

DB_PASSWORD = "hunter2-correct-horse"


def test_planted_keys_stay_out_of_calls_cassettes_errors_and_logs(
    wire: Wire, workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (workspace / ".env").open("a", encoding="utf-8") as fh:
        fh.write(f"DB_PASSWORD={DB_PASSWORD}\n")
    environ_before = dict(os.environ)
    caplog.set_level(logging.DEBUG)
    cassette = workspace / "results" / "cassette.jsonl"
    calls: list[LLMCall] = []
    llm = get_llm(wire.llm, workspace=workspace, recorder=calls.append, record_to=cassette)
    # a server that echoes the credentials it got, in a reply and then in an error
    wire.server.push(wire.reply("you sent {{AUTH}}"), wire.error(400, "bad key {{AUTH}}"))

    reply = llm.invoke(
        [*PROMPT, HumanMessage(f"my db password is {DB_PASSWORD}")], agent="chat", stage="turn"
    )
    with pytest.raises(LLMError) as err:
        llm.invoke(PROMPT, agent="reporter", stage="report")

    assert wire.key in reply.text  # the echo really happened: the agent got the raw reply ...
    assert wire.key in wire.auth_of(wire.server.requests[0])
    recorded = json.dumps([c.to_dict() for c in calls])
    assert MASK in recorded and "you sent" in recorded  # ... but the record of it is redacted
    outputs = {
        "calls": recorded,
        "cassette": cassette.read_text(encoding="utf-8"),
        "exception": f"{err.value!s} {err.value!r} {err.value.__cause__!r}",
        "logs": caplog.text + " ".join(repr(r.__dict__) for r in caplog.records),
        "llm": repr(llm) + llm.name,
    }
    for where, text in outputs.items():
        for secret in (OPENAI_KEY, ANTHROPIC_KEY, DB_PASSWORD):
            assert secret not in text, f"{secret} leaked into {where}"
    assert dict(os.environ) == environ_before  # .env values are read, never exported


def test_redact_masks_known_secrets_and_key_shaped_strings() -> None:
    secrets = {"hunter2-correct-horse", "abc", ""}
    text = (
        "pw hunter2-correct-horse, key sk-proj-AAAAbbbbCCCCdddd1234, Bearer eyJhbGciOiJIUzI1NiJ9.x, abc stays"
    )

    out = redact(text, secrets)

    assert "hunter2" not in out and "sk-proj" not in out and "eyJhbGci" not in out
    assert out.count(MASK) == 3
    assert "abc stays" in out  # values too short to be secrets are left alone
    assert redact_obj({"k": ["x hunter2-correct-horse", 3, None]}, secrets) == {"k": [f"x {MASK}", 3, None]}


def test_collect_secrets_takes_all_env_file_values_and_secret_named_environment() -> None:
    found = collect_secrets(
        {"DB_URL": "postgres://u:pw123456@h/db", "DEBUG": "1", "EMPTY": None},
        {"GITHUB_TOKEN": "ghp_1234567890", "HOME": "/home/someone", "MY_API_KEY": "k-98765432"},
    )
    assert found == {"postgres://u:pw123456@h/db", "ghp_1234567890", "k-98765432"}
