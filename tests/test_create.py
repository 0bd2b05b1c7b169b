"""`specloop create` end to end, offline, for every registered task family: the run's ledger and
artefacts, and each generated project's own tests, one epoch and inference in a fresh venv made
from its requirements-cpu.txt. Then what must stop: infeasible or vague requirements at the gate,
bad input before anything is written, a tick with no record, a kill during codegen, a model that
states a number the measurements do not hold."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from create_fixtures import REQUESTS, create_env
from test_llm_wire import Step, WireServer, openai_reply

from specloop.families import list_families
from specloop.ledger import loop_log
from specloop.ledger.transcript import read_entries, verify_chain
from specloop.pipelines import get_pipeline
from specloop.skills.scaffold.requirements_md import read_requirements_md
from specloop.skills.scaffold.tasks import read_build_records

INFEASIBLE = [
    "Fine-tune a ChatGPT-like model on our company docs and deploy it by Friday",
    "做一个AI系统，提高我们工厂的效率",
]
FAMILIES = [f.name for f in list_families()]
CREATE = get_pipeline("create")
STAGES = [s for scope in CREATE.scope_order for s in CREATE.order(scope)]
TIMEOUT = 1200


def _specloop(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "specloop", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or create_env(),
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
        check=False,
    )


def test_every_family_has_a_request() -> None:
    assert set(FAMILIES) <= set(REQUESTS), "add a requirement for the new family to REQUESTS"
    assert len(FAMILIES) >= 5


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_create_builds_a_verified_project(family: str, create_run: Callable[[str], Path]) -> None:
    out = create_run(family)
    state = json.loads((out / "create_state.json").read_text())
    assert state["status"] == "complete" and state["family"] == family
    project = out / state["project_dir"]
    # one log line per stage, in the registry's order; an intact hash chain
    entries = loop_log.read_entries(out / "loop_log.jsonl")
    assert [e["stage"] for e in entries] == list(STAGES)
    assert all(e["status"] == "ok" and e["iter"] in CREATE.scope_order for e in entries)
    transcript = read_entries(out / "transcript.jsonl")
    assert verify_chain(transcript) == []
    commands = [e for e in transcript if e["kind"] == "command"]
    assert commands and all(c["data"]["sandbox"].startswith("local:") for c in commands)
    # requirements: scored, settled (under --yes: recorded assumptions), English slug
    req = read_requirements_md(out / "requirements.md")
    assert req.family == family and re.fullmatch(r"[a-z][a-z0-9_]*", project.name)
    # tech.md: >= 2 measured candidates, every number labelled
    tech = json.loads((out / "tech.json").read_text())
    assert len(tech["measurements"]) >= 2 and tech["chosen"] in tech["measurements"]
    for m in tech["measurements"].values():
        assert m["exit_code"] == 0 and m["params"] > 0 and m["train_samples_per_sec"] > 0
    text = (out / "tech.md").read_text(encoding="utf-8")
    assert text.count("| measured |") >= 8 and "| extrapolated |" in text
    # the build log ticks only next to passing records; the review passed; venv.md and copies
    log = (out / "PROJECT_BUILD_LOG.md").read_text(encoding="utf-8")
    assert "- [ ]" not in log and log.count("- [x]") == len(json.loads((out / "tasks.json").read_text()))
    assert "**PASS**" in (out / "REVIEW_REPORT.md").read_text(encoding="utf-8")
    assert state["stages"]["review"]["fixed"] == [], (
        "codegen renders what the reviewer finds nothing to fix in"
    )
    for name in ("venv.md", "CLAUDE.md", "VENV_CONFIG.md", "DEBUG_CODE.md", "DOCKER_CONFIG.md", "tech.md"):
        assert (project / name).is_file(), name
    assert (project / "outputs" / "last.pt").is_file()
    # the target project is a git repository with the flow's commits
    history = subprocess.run(
        ["git", "log", "--format=%s"], cwd=project, capture_output=True, text=True, check=True
    )
    assert "specloop create: render" in history.stdout and "specloop venv" in history.stdout


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_the_project_runs_in_a_fresh_venv(
    family: str, create_run: Callable[[str], Path], tmp_path: Path
) -> None:
    out = create_run(family)
    project = out / json.loads((out / "create_state.json").read_text())["project_dir"]
    # the venv env_check made from the project's requirements-cpu.txt, fresh for this run
    report = json.loads((project / "env_check_report.json").read_text())
    python = project / "debug-cpu" / "bin" / "python"
    assert python.is_file() and report["packages_installed"], report
    copy = tmp_path / project.name
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("outputs", ".git", "debug-cpu"))

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), *argv], cwd=copy, capture_output=True, text=True, timeout=900, check=False
        )

    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    train = run("scripts/train.py", "--data", "data/mini", "--epochs", "1", "--output", "outputs")
    assert train.returncode == 0, train.stderr[-3000:]
    assert (copy / "outputs" / "last.pt").is_file()
    infer = run("scripts/infer.py", "--checkpoint", "outputs/last.pt", "--data", "data/mini")
    assert infer.returncode == 0, infer.stderr[-3000:]
    assert infer.stdout.strip(), "inference printed its predictions"


@pytest.mark.parametrize("requirement", INFEASIBLE)
def test_infeasible_or_vague_requirements_stop_at_the_gate(requirement: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _specloop("create", requirement, "--out", str(out), "--yes", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "approval_gate" in proc.stderr and "no code was generated" in proc.stderr
    req = read_requirements_md(out / "requirements.md")
    assert 1 <= len([q for q in req.questions if q.answer is None]) <= 5
    assert all(2 <= len(q.options) <= 5 and q.recommended in {o.id for o in q.options} for q in req.questions)
    assert not (out / "tech.md").exists() and not any(
        p.is_dir() and (p / "src").exists() for p in out.iterdir()
    )
    state = json.loads((out / "create_state.json").read_text())
    assert state["status"] == "stopped" and state["stop"]["stage"] == "approval_gate"
    # without --yes and without a terminal it waits at the gate instead
    waiting = _specloop("create", requirement, "--out", str(tmp_path / "w"), cwd=tmp_path)
    assert waiting.returncode == 4 and "waiting for approval" in waiting.stderr


def _answers(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "answers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["Q9: a\n"], "question 'Q9' does not exist"),
        (["Q1: z\n"], "has no option 'z'"),
        ([], "the requirement is empty"),
        (["-f"], "no such requirement file"),
    ],
    ids=["unknown-question", "invalid-option", "empty", "missing-file"],
)
def test_bad_input_is_one_sentence_and_nothing_is_written(
    args: list[str], sentence: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    if args == ["-f"]:
        argv = ["create", "-f", str(tmp_path / "nope.md"), "--out", str(out), "--yes"]
    elif args:
        argv = [
            "create",
            REQUESTS["image_classification"],
            "--answers",
            str(_answers(tmp_path, args[0])),
            "--out",
            str(out),
        ]
    else:
        argv = ["create", "   ", "--out", str(out), "--yes"]
    proc = _specloop(*argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert sentence in proc.stderr and "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1
    assert not out.exists()


@pytest.mark.slow
def test_a_tick_without_a_record_is_caught_by_review(
    create_run: Callable[[str], Path], tmp_path: Path
) -> None:
    from specloop.graph.build import nodes

    src = create_run("image_classification")
    out = tmp_path / "out"
    shutil.copytree(src, out, symlinks=True)
    state = json.loads((out / "create_state.json").read_text())
    state["stop"], state["status"] = None, "in_progress"
    (out / "create_state.json").write_text(json.dumps(state))
    lines = (out / "loop_log.jsonl").read_text().splitlines()
    (out / "loop_log.jsonl").write_text("\n".join(lines[: STAGES.index("review")]) + "\n")
    log = out / "PROJECT_BUILD_LOG.md"
    text = log.read_text(encoding="utf-8")
    kept = [r.__dict__ for r in read_build_records(log) if r.task != "T06"]
    block = text.index("```yaml build-records")
    log.write_text(text[:block] + "```yaml build-records\n" + yaml.safe_dump(kept, sort_keys=True) + "```\n")
    assert "- [x] T06" in log.read_text(encoding="utf-8")
    graph_state = {"run_dir": str(out), "workspace": str(out), "options": {"progress": False}}
    assert nodes(get_pipeline("create"))["review"](graph_state) == {"halt": "hard_stop"}
    stop = json.loads((out / "create_state.json").read_text())["stop"]
    assert stop["check"] == "review" and "build-log" in stop["detail"] and "T06" in stop["detail"]


PART_A = list(CREATE.order("framework"))
DIGITS = REQUESTS["image_classification"]


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Part A of the digits request, SIGKILLed during codegen, then resumed."""
    root = tmp_path_factory.mktemp("killed")
    out = root / "out"
    argv = [
        sys.executable,
        "-m",
        "specloop",
        "create",
        DIGITS,
        "--out",
        str(out),
        "--yes",
        "--stop-after",
        "venv",
    ]
    proc = subprocess.Popen(
        [*argv, "--no-progress"],
        cwd=root,
        env=create_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            logged = [e["stage"] for e in loop_log.read_entries(out / "loop_log.jsonl")]
            if "tasks" in logged and list((out / "logs").glob("codegen_T0*.log")):
                break
            assert proc.poll() is None, "the run ended before codegen"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert "codegen" not in [e["stage"] for e in loop_log.read_entries(out / "loop_log.jsonl")]
    resumed = _specloop("create", "resume", str(out), "--yes", cwd=root)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "stopped after venv, as asked" in resumed.stderr
    return out


def _wrong_number_model(body: dict[str, Any]) -> Step:
    return openai_reply("small_cnn has 123,456,789 parameters and answers in 0.001 ms.", usage=(90, 20))


@pytest.fixture(scope="module")
def with_a_wrong_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Part A of the digits request with a loopback model that states numbers the tools never measured."""
    root = tmp_path_factory.mktemp("model")
    out = root / "out"
    with WireServer("/v1/chat/completions", responder=_wrong_number_model) as server:
        llm = f"openai-compatible:{server.root}/v1:loopback-model"
        env = create_env(OPENAI_COMPATIBLE_API_KEY="sk-loopback-test-key-0123456789")
        proc = _specloop(
            "create",
            DIGITS,
            "--out",
            str(out),
            "--yes",
            "--stop-after",
            "venv",
            "--llm",
            llm,
            cwd=root,
            env=env,
        )
        assert server.requests, "the model was asked"
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_a_kill_during_codegen_resumes_without_redoing_finished_stages(killed_and_resumed: Path) -> None:
    out = killed_and_resumed
    entries = loop_log.read_entries(out / "loop_log.jsonl")
    assert [e["stage"] for e in entries] == PART_A
    assert [e["seq"] for e in entries] == list(range(1, len(PART_A) + 1))
    assert json.loads((out / "create_state.json").read_text())["status"] == "complete"
    transcript = read_entries(out / "transcript.jsonl")
    assert verify_chain(transcript) == []
    starts = [e["stage"] for e in transcript if e["kind"] == "stage_start"]
    assert starts.count("tech") == 1 and starts.count("codegen") == 2


@pytest.mark.slow
def test_a_model_that_states_a_wrong_number_is_rejected(with_a_wrong_model: Path) -> None:
    out = with_a_wrong_model
    rejected = [e for e in read_entries(out / "transcript.jsonl") if e["kind"] == "model_text_rejected"]
    assert any(e["stage"] == "tech" and "123,456,789" in json.dumps(e["data"]) for e in rejected)
    tech = (out / "tech.md").read_text(encoding="utf-8")
    assert "123,456,789" not in tech and "(measured)." in tech


MEASURED = {"tech.md", "outputs", ".git", ".pytest_cache", ".ruff_cache", "__pycache__"}


def _files(project: Path) -> dict[str, bytes]:
    return {
        p.relative_to(project).as_posix(): p.read_bytes()
        for p in sorted(project.rglob("*"))
        if p.is_file() and not MEASURED & set(p.relative_to(project).parts)
    }


@pytest.mark.slow
def test_the_same_requirement_gives_the_same_artefacts(
    killed_and_resumed: Path, with_a_wrong_model: Path
) -> None:
    """Two runs of one requirement (one killed and resumed, one with a rejected model draft): the same
    requirements.md and project, byte for byte — measured numbers and the files that carry them aside."""
    a, b = killed_and_resumed, with_a_wrong_model
    assert (a / "requirements.md").read_bytes() == (b / "requirements.md").read_bytes()
    name = json.loads((a / "create_state.json").read_text())["project_dir"]
    files = _files(a / name)
    assert len(files) > 20 and files == _files(b / name)
