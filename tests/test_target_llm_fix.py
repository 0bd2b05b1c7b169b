"""The bug-fix loop's model path: an error no fix rule knows goes to the coder's model (an
OpenAI-compatible server on 127.0.0.1), whose unified diff is applied only when `git apply` takes
every hunk; a correct diff fixes the seeded bug, one that does not apply stops the loop naming the
file and hunk, with nothing of the project changed. Copies of the session's digits run share its venv."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import git
import pytest
from create_fixtures import create_env
from test_llm_wire import MODEL, WireServer, isolate_env, openai_reply
from test_target_flow import PKG, PROJECT, TIMEOUT, _commit_break, _copy, _insert, _one_epoch

from specloop.ledger.transcript import read_entries, verify_chain
from specloop.llm import BudgetExceeded

KEY = "sk-test-compatible-0123456789abcdefXYZ"
TRAIN = f"src/{PKG}/train.py"


@pytest.fixture(scope="session")
def digits_run(create_run: Callable[[str], Path]) -> Path:
    """The session's digits create run (parts A and B; read-only)."""
    return create_run("image_classification")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[WireServer]:
    isolate_env(monkeypatch, tmp_path)
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", KEY)
    with WireServer("/v1/chat/completions") as wire:
        yield wire


def _broken(digits_run: Path, dest: Path, llm: str) -> tuple[Path, str, str]:
    """A copy whose train.py holds a secret in a comment and then a bug no rule knows; its state
    names `llm` (for the in-process stage). Returns the run, the broken commit and the diff that
    undoes the bug."""
    run_dir = _copy(digits_run, dest)
    project = run_dir / PROJECT
    _insert(project, "train.py", "import numpy as np", f"# deploy token: {KEY}")
    _commit_break(project, "a secret in a comment")
    _insert(
        project, "train.py", "model = build_model(cfg)", "raise KeyError('seeded: no rule knows this one')"
    )
    broken = _commit_break(project, "unknown")
    fix = git.Repo(project).git.diff("HEAD", "HEAD~1", "--", TRAIN) + "\n"
    state = run_dir / "create_state.json"
    st = json.loads(state.read_text())
    st["config"]["options"]["llm"] = llm
    state.write_text(json.dumps(st))
    return run_dir, broken, fix


def _llm(server: WireServer) -> str:
    return f"openai-compatible:{server.root}/v1:{MODEL}"


def _asked(server: WireServer) -> str:
    (seen,) = server.requests
    return json.dumps(seen.body["messages"])


@pytest.mark.slow
def test_the_models_diff_fixes_a_bug_no_rule_knows(
    digits_run: Path, tmp_path: Path, server: WireServer
) -> None:
    run_dir, broken, fix = _broken(digits_run, tmp_path / "run", _llm(server))
    project = run_dir / PROJECT
    server.push(openai_reply(f"The seeded raise is the cause:\n```diff\n{fix}```\n", usage=(900, 80)))
    result = _one_epoch(run_dir)
    asked = _asked(server)
    assert "KeyError" in asked and TRAIN in asked and "Traceback" in asked
    assert KEY not in asked and "[REDACTED]" in asked  # the file was shown with its secret masked
    report = json.loads((project / "bugfix_report.json").read_text())
    assert report["closed"], report
    (issue,) = report["issues"]
    assert issue["rule"] is None and issue["status"] == "fixed" and "KeyError" in issue["signature"]
    (attempt,) = report["attempts"]
    assert attempt["model"] == MODEL and attempt["result"] == "passed" and TRAIN in attempt["action"]
    assert attempt["diff"].startswith("diff --git") and "-    raise KeyError" in attempt["diff"]
    assert git.Repo(project).commit(attempt["commit"]).parents[0].hexsha == broken
    assert [t["ok"] for t in report["final_tests"]] == [True, True]  # infer and the project's own tests
    assert result.record["attempts"] == 1
    text = (project / "bugfix_report.md").read_text()
    assert f"Attempt 1: diff by model {MODEL}" in text and "```diff" in text
    entries = read_entries(run_dir / "transcript.jsonl")
    assert verify_chain(entries) == []
    tried = [e["data"] for e in entries if e["kind"] == "bugfix_attempt"]
    assert tried[-1]["model"] == MODEL and tried[-1]["applied"] and "raise KeyError" in tried[-1]["diff"]
    assert [e["stage"] for e in entries if e["kind"] == "model_call"] == ["one_epoch"]
    assert KEY not in (run_dir / "transcript.jsonl").read_text()


@pytest.mark.slow
def test_a_diff_that_does_not_apply_stops_the_loop(
    digits_run: Path, tmp_path: Path, server: WireServer
) -> None:
    """Through the command: `specloop target run --llm` stops with exit 2, naming the file and hunk."""
    constraint = digits_run.parent / "cpu-torch-constraint.txt"  # what the session's run installed with
    run_dir, broken, fix = _broken(digits_run, tmp_path / "run", "offline")
    project = run_dir / PROJECT
    lines = fix.splitlines(keepends=True)
    first = next(i for i, ln in enumerate(lines) if ln.startswith(" ") and i > 4)  # a context line
    lines[first] = lines[first].rstrip("\n") + "  # stale\n"  # one the file does not hold
    stale = "".join(lines)
    server.push(openai_reply(f"```diff\n{stale}```"))
    argv = ["target", "run", str(project), "--yes", "--constraint", str(constraint), "--llm", _llm(server)]
    proc = subprocess.run(
        [sys.executable, "-m", "specloop", *argv, "--no-progress"],
        capture_output=True,
        text=True,
        env=create_env(),
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"the model's diff does not apply to {TRAIN}: hunk 1" in proc.stderr, proc.stderr[-3000:]
    repo = git.Repo(project)
    assert repo.git.diff(broken, "HEAD", "--", "src", "scripts", "configs", "tests") == ""  # not half-patched
    assert not repo.is_dirty()
    report = json.loads((project / "bugfix_report.json").read_text())
    assert not report["closed"] and report["open_critical"] == 1
    (attempt,) = report["attempts"]
    assert attempt["result"] == "not applied" and attempt["commit"] is None and "# stale" in attempt["diff"]
    assert "does not apply" in (project / "bugfix_report.md").read_text()
    (target_run,) = (run_dir / f"{PROJECT}_target").glob("run_*")
    entries = read_entries(target_run / "transcript.jsonl")
    assert verify_chain(entries) == []
    assert [e["data"]["applied"] for e in entries if e["kind"] == "bugfix_attempt"] == [False]
    assert KEY not in (target_run / "transcript.jsonl").read_text()


@pytest.mark.slow
def test_a_spent_llm_budget_stops_the_loop_with_its_report(
    digits_run: Path, tmp_path: Path, server: WireServer
) -> None:
    run_dir, _, _ = _broken(digits_run, tmp_path / "run", _llm(server))
    (run_dir / "specloop.toml").write_text("budget_tokens = 100\n")  # less than the prompt alone
    with pytest.raises(BudgetExceeded, match="would exceed the LLM budget"):
        _one_epoch(run_dir)
    assert server.requests == []  # refused before anything was sent
    report = json.loads((run_dir / PROJECT / "bugfix_report.json").read_text())
    assert not report["closed"] and report["stop_reason"].startswith("the LLM budget is spent")
