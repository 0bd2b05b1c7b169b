"""A kill inside part B: `specloop target run` SIGKILLed while one_epoch's training runs resumes
from one_epoch, reusing the venv env_check finished, and leaves a ledger with one line per stage,
an intact transcript chain and a clean audit. A venv a kill left mid-install (no install record)
is reinstalled, one whose record matches is reused."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from create_fixtures import create_env
from test_target_flow import PART_B, PROJECT, TIMEOUT, _copy

from specloop.ledger import loop_log
from specloop.ledger.transcript import read_entries, verify_chain
from specloop.skills.target.env import INSTALL_RECORD, Install, install_venv, venv_python

WAIT_S = 1200  # generous: CI shares two cores


@pytest.fixture(scope="session")
def digits_run(create_run: Callable[[str], Path]) -> Path:
    """The session's digits create run (parts A and B; read-only)."""
    return create_run("image_classification")


def _transcript(run_dir: Path) -> list[dict]:
    path = run_dir / "transcript.jsonl"
    return read_entries(path) if path.is_file() else []


def _training(pid: int) -> list[psutil.Process]:
    """The 1-epoch training processes under `pid` (the sandbox starts them in their own session)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "scripts/train.py" in child.cmdline():
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _kill_tree(proc: subprocess.Popen, tree: list[psutil.Process]) -> None:
    """SIGKILL the command and everything it started, as a lost terminal or machine would."""
    try:
        everything = [*psutil.Process(proc.pid).children(recursive=True), *tree]
    except psutil.Error:  # it has ended already
        everything = list(tree)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for p in everything:
        with contextlib.suppress(psutil.Error):
            p.kill()
    proc.wait(timeout=60)
    psutil.wait_procs(everything, timeout=60)


@pytest.mark.slow
def test_a_kill_during_one_epoch_resumes_with_a_contiguous_ledger(digits_run: Path, tmp_path: Path) -> None:
    run_dir = _copy(digits_run, tmp_path / "run")
    project = run_dir / PROJECT
    constraint = digits_run.parent / "cpu-torch-constraint.txt"
    record = project / "debug-cpu" / INSTALL_RECORD
    record_before = record.read_bytes()
    argv = [sys.executable, "-m", "specloop", "target", "run", str(project), "--yes", "--no-progress"]
    argv += ["--constraint", str(constraint)]
    proc = subprocess.Popen(
        argv,
        env=create_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    target_root = run_dir / f"{PROJECT}_target"
    deadline = time.monotonic() + WAIT_S
    training: list[psutil.Process] = []
    try:
        while not training:
            assert proc.poll() is None, (
                f"the target run ended (exit {proc.returncode}) before one_epoch trained"
            )
            assert time.monotonic() < deadline, "one_epoch did not start training in time"
            runs = sorted(target_root.glob("run_*"))
            started = runs and any(
                e["kind"] == "stage_start" and e["stage"] == "one_epoch" for e in _transcript(runs[-1])
            )
            training = _training(proc.pid) if started else []
            time.sleep(0.2)
    finally:
        _kill_tree(proc, training)
    (target,) = target_root.glob("run_*")
    killed = loop_log.read_entries(target / "loop_log.jsonl")
    assert [e["stage"] for e in killed if e["iter"] == "target"] == list(PART_B[:3])  # one_epoch not logged

    resumed = subprocess.run(
        argv, capture_output=True, text=True, env=create_env(), stdin=subprocess.DEVNULL, timeout=TIMEOUT
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(target_root.glob("run_*")) == [target]  # the same run, resumed
    log = loop_log.read_entries(target / "loop_log.jsonl")
    assert [e["stage"] for e in log if e["iter"] == "target"] == list(PART_B)  # each stage once
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1)) and all(e["status"] == "ok" for e in log)
    entries = _transcript(target)
    assert verify_chain(entries) == []
    starts = [e["stage"] for e in entries if e["kind"] == "stage_start"]
    assert starts.count("one_epoch") == 2 and starts.count("env_check") == 1  # env_check was not redone
    installs = [e for e in entries if e["kind"] == "tool_call" and e["data"]["tool"] == "target.install_venv"]
    assert len(installs) == 1 and "reused" in log[[e["stage"] for e in log].index("env_check")]["summary"]
    assert record.read_bytes() == record_before  # the venv's install record: nothing reinstalled
    report = json.loads((project / "bugfix_report.json").read_text())
    assert report["closed"] and (project / "outputs" / "one_epoch" / "best.pt").is_file()
    audit = subprocess.run(
        [sys.executable, "-m", "specloop", "audit", str(target)],
        capture_output=True,
        text=True,
        env=create_env(),
        timeout=600,
    )
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-2000:]


def _install(project: Path, log: Path) -> Install:
    return install_venv(project, "debug-cpu", "requirements-cpu.txt", constraint=None, log_path=log)


@pytest.mark.slow
def test_a_venv_left_mid_install_is_reinstalled_and_a_finished_one_reused(tmp_path: Path) -> None:
    """The install record decides, not the directory. No network: the requirement is pip itself,
    which a new venv already holds (three venv creations: about a minute on a loaded CI machine)."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "requirements-cpu.txt").write_text("pip\n")
    subprocess.run([sys.executable, "-m", "venv", str(project / "debug-cpu")], check=True, timeout=300)
    assert venv_python(project / "debug-cpu").exists()  # a venv as a kill mid-`pip install` leaves it
    first = _install(project, tmp_path / "first.log")
    assert not first.reused and first.ok and "pip install" in (tmp_path / "first.log").read_text()
    record = json.loads((project / "debug-cpu" / INSTALL_RECORD).read_text())
    assert record["exit_code"] == 0 and record["requirements"] == "requirements-cpu.txt"
    again = _install(project, tmp_path / "again.log")
    assert again.reused and again.seconds == first.seconds and not (tmp_path / "again.log").exists()
    (project / "requirements-cpu.txt").write_text("pip\n# changed\n")  # the record no longer matches
    changed = _install(project, tmp_path / "changed.log")
    assert not changed.reused and (tmp_path / "changed.log").is_file()
