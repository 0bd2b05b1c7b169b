"""The DEFT loop with a chat model: a loopback OpenAI-compatible server stands in for the provider.

The model only words what the tools computed: a draft stating a FAR the ledger does not hold is
rejected and the offline text used; usage lands in the transcript and in loop_log's `tokens`;
a recorded run replays to the same model calls; a planted key appears in no file the run wrote.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_llm_wire import Step, WireServer, error_step, openai_reply

from specloop.ledger import loop_log
from specloop.ledger.transcript import read_entries, verify_chain
from specloop.skills.report.text import MAX_SUMMARY_WORDS

FAST = ["--epochs", "2", "--max-iterations", "1", "--no-progress"]
PLANTED_KEY = "sk-proj-PLANTEDfakeKEY0123456789abcdefghijklmnopqrstuv"
WRONG = "The KPI FAR@100%R came out at 12.34% this round."


def _prompt_of(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def _restating_model(body: dict[str, Any]) -> Step:
    """A well-behaved model: restates the tools' wording, or says something without numbers."""
    prompt = _prompt_of(body)
    match = re.search(r"The tools' own wording, which you may improve:\n(.*?)\n\nState only", prompt, re.S)
    text = f"In short: {match.group(1)}" if match else "The run is set up as summarised above."
    return openai_reply(text, usage=(120, 40))


def _wrong_far_model(body: dict[str, Any]) -> Step:
    return openai_reply(WRONG, usage=(100, 20))


def _deft_run(ws: Path, *args: str) -> Path:
    argv = [sys.executable, "-m", "specloop", "deft", "run", "--workspace", str(ws), "--yes", *FAST, *args]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        timeout=400,
        check=False,
    )
    assert proc.returncode in (0, 3), proc.stderr[-3000:]
    (run,) = sorted((ws / "results").glob("run_*"))
    return run


def _loopback(server: WireServer) -> str:
    return f"openai-compatible:{server.root}/v1:loopback-model"


def _copy(tiny: Path, dest: Path) -> Path:
    shutil.copytree(tiny, dest)
    return dest


def _model_calls(run: Path) -> list[dict[str, Any]]:
    return [e for e in read_entries(run / "transcript.jsonl") if e["kind"] == "model_call"]


@pytest.fixture(scope="module")
def hostile_run(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run whose model echoes its credentials in an error once, then states a wrong FAR every time."""
    ws = _copy(tiny_workspace, tmp_path_factory.mktemp("hostile") / "ws")
    (ws / ".env").write_text(f"OPENAI_COMPATIBLE_API_KEY={PLANTED_KEY}\n", encoding="utf-8")
    with WireServer("/v1/chat/completions", responder=_wrong_far_model) as server:
        server.push(error_step("openai", 400, "bad request from {{AUTH}}"))
        run = _deft_run(ws, "--llm", _loopback(server))
        assert server.requests, "the model was never called"
        assert all(PLANTED_KEY in s.headers.get("authorization", "") for s in server.requests)
    return ws, run


def test_a_wrong_far_is_rejected_and_the_offline_summary_used(hostile_run: tuple[Path, Path]) -> None:
    _, run = hostile_run
    entries = read_entries(run / "transcript.jsonl")
    assert verify_chain(entries) == []
    rejected = [e for e in entries if e["kind"] == "model_text_rejected"]
    assert {e["stage"] for e in rejected} >= {"preflight", "rca", "report"}
    wrong = [e for e in rejected if "12.34%" in " ".join(e["data"]["reasons"])]
    assert wrong and all(e["data"]["used"] == "offline" for e in wrong)
    assert not [e for e in entries if e["kind"] == "model_text_accepted"]
    for path in [*run.glob("*_summary.md"), *run.glob("*/rca_results/rca_explanation.md")]:
        assert "12.34" not in path.read_text(encoding="utf-8"), path
    summary = (run / "iter1_summary.md").read_text(encoding="utf-8")
    assert "**Result.** KPI FAR@100%R" in summary  # the tools' own wording
    decision = json.loads((run / "deft_state.json").read_text())["iterations"]["iter1"]["decision"]
    assert "12.34" not in decision["rationale"]


def test_model_usage_is_in_the_transcript_and_the_stage_log(hostile_run: tuple[Path, Path]) -> None:
    _, run = hostile_run
    calls = _model_calls(run)
    assert calls and all(c["data"]["input_tokens"] == 100 and c["data"]["output_tokens"] == 20 for c in calls)
    assert all(c["data"]["provider"] == "openai-compatible" and c["data"]["cost_usd"] == 0.0 for c in calls)
    log = loop_log.read_entries(run / "loop_log.jsonl")
    report = next(e for e in log if (e["iter"], e["stage"]) == ("iter1", "report"))
    assert report["tokens"]["calls"] == 1 and report["tokens"]["input"] == 100
    assert sum(e["tokens"]["calls"] for e in log) == len(calls)
    train = next(e for e in log if e["stage"] == "train")
    assert train["tokens"]["calls"] == 0


def test_a_planted_key_appears_in_no_file_the_run_wrote(hostile_run: tuple[Path, Path]) -> None:
    ws, run = hostile_run
    rejected = [e for e in read_entries(run / "transcript.jsonl") if e["kind"] == "model_text_rejected"]
    assert any("400" in " ".join(e["data"]["reasons"]) for e in rejected), "the echoing error was not met"
    needle = PLANTED_KEY.encode()
    checked = 0
    for path in (ws / "results").rglob("*"):
        if path.is_file():
            checked += 1
            assert needle not in path.read_bytes(), f"the key leaked into {path}"
    assert checked > 50


def test_record_then_replay_gives_the_same_model_calls(tiny_workspace: Path, tmp_path: Path) -> None:
    cassette = tmp_path / "run.cassette.jsonl"
    with WireServer("/v1/chat/completions", responder=_restating_model) as server:
        ws = _copy(tiny_workspace, tmp_path / "a")
        recorded = _deft_run(ws, "--llm", _loopback(server), "--record", str(cassette))
    accepted = [e for e in read_entries(recorded / "transcript.jsonl") if e["kind"] == "model_text_accepted"]
    assert accepted, "a model that restates the tools' numbers must be accepted"
    summary = (recorded / "iter1_summary.md").read_text(encoding="utf-8")
    assert summary.startswith("# iter1 summary") and "In short:" in summary
    assert len(summary.split()) <= MAX_SUMMARY_WORDS

    replayed = _deft_run(_copy(tiny_workspace, tmp_path / "b"), "--llm", f"replay:{cassette}")

    def comparable(run: Path) -> list[tuple[Any, ...]]:
        return [
            (e["agent"], e["stage"], e["iter"], e["data"]["messages"], e["data"]["response"]["content"])
            for e in _model_calls(run)
        ]

    assert comparable(replayed) == comparable(recorded)
    assert [e for e in read_entries(replayed / "transcript.jsonl") if e["kind"] == "model_text_accepted"]
    assert (replayed / "iter1_summary.md").read_text(encoding="utf-8") == summary
