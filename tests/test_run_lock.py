"""One owner per run: a second process on a live run gets one sentence naming the holder's PID and
exit 2 and changes nothing (every file of the run is byte-identical); a SIGKILLed holder's run
resumes at once; of two resumes started together exactly one proceeds and the record stays sound."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from cli_helpers import specloop_cli

from specloop.ledger import loop_log
from specloop.ledger import state as ledger_state
from specloop.ledger.lock import LOCK_FILE, hold_run
from specloop.ledger.transcript import read_entries, verify_chain

HOLDER = """
import sys
from pathlib import Path
from specloop.ledger.lock import hold_run
with hold_run(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


_cli = partial(specloop_cli, timeout=900, columns=250)


def _run_dir(ws: Path) -> Path:
    (run,) = sorted((ws / "results").glob("run_*"))
    return run


def _tree(run: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


def _gate_run(tiny_workspace: Path, tmp_path: Path, epochs: str = "2") -> Path:
    """A tiny run stopped at the gate (pre-flight only): no process holds it."""
    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace, ws)
    args = (
        "deft",
        "run",
        "--workspace",
        str(ws),
        "--epochs",
        epochs,
        "--max-iterations",
        "1",
        "--no-progress",
    )
    waiting = _cli(*args)
    assert waiting.returncode == 4, waiting.stderr[-2000:]
    return _run_dir(ws)


@pytest.fixture
def held_run(tiny_workspace: Path, tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A run at the gate, held by a helper process until the test kills it."""
    run = _gate_run(tiny_workspace, tmp_path)
    helper = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert helper.stdout is not None and helper.stdout.readline().strip() == "held"
        yield run, helper
    finally:
        helper.kill()
        helper.wait(timeout=60)


def test_a_live_holder_refuses_resume_and_chat_then_its_kill_frees_the_run(
    held_run: tuple[Path, subprocess.Popen[str]],
) -> None:
    run, helper = held_run
    before = _tree(run)
    for args, stdin in (
        (("deft", "resume", str(run), "--yes"), None),
        (("chat", "--resume", str(run)), "quit\n"),
    ):
        refused = _cli(*args, stdin=stdin)
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert f"is held by process {helper.pid} " in refused.stderr and "Traceback" not in refused.stderr
        assert refused.stderr.count("error:") == 1
    assert _tree(run) == before, "a refused process changed the run"

    helper.send_signal(signal.SIGKILL)
    helper.wait(timeout=60)
    again = _cli("deft", "resume", str(run))  # no --yes and no terminal: it proceeds to the gate again
    assert again.returncode == 4 and "waiting for approval" in again.stderr, again.stderr[-2000:]
    assert (run / LOCK_FILE).read_text() == "", "a released lock names no holder"


def test_the_lock_is_reentrant_in_one_process_and_names_its_holder(tmp_path: Path) -> None:
    with hold_run(tmp_path), hold_run(tmp_path):
        held = json.loads((tmp_path / LOCK_FILE).read_text())
        assert held["pid"] == os.getpid() and held["command"]
        refused = subprocess.run(
            [sys.executable, "-c", HOLDER, str(tmp_path)], capture_output=True, text=True, timeout=120
        )
        assert refused.returncode != 0 and f"is held by process {os.getpid()} " in refused.stderr
    assert (tmp_path / LOCK_FILE).read_text() == ""


def test_two_resumes_at_once_exactly_one_proceeds_and_the_record_stays_sound(
    tiny_workspace: Path, tmp_path: Path
) -> None:
    run = _gate_run(tiny_workspace, tmp_path, epochs="1")
    cmd = [sys.executable, "-m", "specloop", "deft", "resume", str(run), "--yes", "--json"]
    env = {**os.environ, "COLUMNS": "250"}
    procs = [
        subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    results = [(p, *p.communicate(timeout=1800)) for p in procs]
    refused = [(p, err) for p, _, err in results if p.returncode == 2]
    proceeded = [(p, out) for p, out, _ in results if p.returncode != 2]
    assert len(refused) == 1 and len(proceeded) == 1, [(p.returncode, err[-800:]) for p, _, err in results]
    (winner, out), ((_, err),) = proceeded[0], refused
    assert f"is held by process {winner.pid} " in err and "Traceback" not in err
    assert json.loads(out)["exit_code"] in (0, 3)
    entries = loop_log.read_entries(run / "loop_log.jsonl")
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    stages = [(e["iter"], e["stage"]) for e in entries]
    assert len(stages) == len(set(stages)) and stages[-1] == ("final", "loop_stop")
    assert verify_chain(read_entries(run / "transcript.jsonl")) == []
    assert ledger_state.load(run)["status"] == "complete"
