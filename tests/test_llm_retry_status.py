"""A model call being retried says so: one status line per retried attempt (attempt n/N, the wait,
the error class); a model that does not connect fails with one sentence, and later calls of the
same process fail at once instead of waiting out the retries again."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_llm_wire import PROMPT, Wire, isolate_env, wire, workspace  # noqa: F401

from specloop.llm import LLMError, get_llm


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_each_retried_attempt_is_one_status_line(wire: Wire, workspace: Path) -> None:  # noqa: F811
    wire.server.push(wire.error(503, "overloaded"), wire.error(503, "overloaded"), wire.reply("fine"))
    lines: list[str] = []
    llm = get_llm(wire.llm, workspace=workspace, notify=lines.append)
    assert llm.invoke(PROMPT, agent="planner", stage="plan").content == "fine"
    assert len(lines) == 2, lines
    for n, line in enumerate(lines, start=1):
        assert line.startswith(f"[plan · model] {llm.name} for planner: attempt {n}/3 failed (")
        assert " 503); retrying in " in line and line.endswith("s")
        assert wire.key not in line


def test_an_unreachable_model_is_one_sentence_then_not_retried(workspace: Path) -> None:  # noqa: F811
    lines: list[str] = []
    llm = get_llm(
        f"openai-compatible:http://127.0.0.1:{_closed_port()}/v1:m", workspace=workspace, notify=lines.append
    )
    with pytest.raises(LLMError) as first:
        llm.invoke(PROMPT, agent="planner", stage="plan")
    assert "failed after 3 attempt(s)" in first.value.message and "\n" not in first.value.message
    assert [line.split(": attempt ")[1].split(" failed")[0] for line in lines] == ["1/3", "2/3"]
    assert all("ConnectionError" in line for line in lines)
    with pytest.raises(LLMError) as later:
        llm.invoke(PROMPT, agent="reporter", stage="report")
    assert "was not sent" in later.value.message and "reporter" in later.value.message
    assert len(lines) == 2, "a later call waited out the retries again"


def test_the_retry_lines_reach_the_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_env(monkeypatch, tmp_path)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "specloop.toml").write_text("llm_max_retries = 1\nllm_backoff_initial_s = 0.01\n", encoding="utf-8")
    llm = f"openai-compatible:http://127.0.0.1:{_closed_port()}/v1:m"
    proc = subprocess.run(
        [sys.executable, "-m", "specloop", "chat", "--workspace", str(ws), "--llm", llm],
        input="status\nquit\n",
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[chat · model] " in proc.stderr and "attempt 1/2 failed (" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout.count("There is no run in this chat yet") == 1, "the fallback answered more than once"
