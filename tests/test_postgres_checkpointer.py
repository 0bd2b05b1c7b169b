"""`--checkpointer postgresql://…` against a real PostgreSQL server: a tiny run killed in the middle of
a stage resumes from Postgres with a contiguous log, and a URL that does not connect is one sentence
with no run directory left behind.

The server is a throwaway cluster this module starts (initdb + pg_ctl on a free loopback port, its
socket and data in the test's tmp dir), or the one `SPECLOOP_TEST_POSTGRES_URL` names."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import psycopg
import pytest
from cli_helpers import specloop_cli

from specloop.ledger import loop_log
from specloop.ledger.transcript import read_entries, verify_chain

ENV = {**os.environ, "COLUMNS": "250"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _initdb() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    which = shutil.which("initdb")
    return Path(found[-1]) if found else Path(which) if which else None


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("SPECLOOP_TEST_POSTGRES_URL"):
        yield url
        return
    initdb = _initdb()
    if initdb is None:
        pytest.skip("no PostgreSQL binaries (initdb) on this machine; CI installs Debian's postgresql")
    bindir = initdb.parent
    root = tmp_path_factory.mktemp("postgres")
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    run_as: list[str] = []
    opened: list[tuple[Path, int]] = []
    # The server refuses to run as root: as root it runs as the postgres user, which must walk
    # through pytest's 0700 tmp root. A pytest session started meanwhile on the same machine resets
    # that root to 0700 and the server loses its files; CI runs one session (or sets the URL).
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        for parent in root.parents:  # pytest's tmp dirs are 0700: let the server walk through them
            if parent == Path(tmp_path_factory.getbasetemp()).parent.parent:
                break
            mode = parent.stat().st_mode
            opened.append((parent, stat.S_IMODE(mode)))
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    port = _free_port()
    subprocess.run(
        [*run_as, str(initdb), "-D", str(data), "-U", "specloop", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    options = f"-h 127.0.0.1 -p {port} -k {sock} -F"
    subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "-t",
            "120",
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    try:
        yield f"postgresql://specloop@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=120,
            check=False,
        )
        for path, mode in reversed(opened):
            path.chmod(mode)


_cli = partial(specloop_cli, timeout=900, env=ENV)


def test_a_run_killed_mid_stage_resumes_from_postgres(ws: Path, postgres_url: str) -> None:
    cmd = [sys.executable, "-m", "specloop", "deft", "run", "--workspace", str(ws), "--yes", "--no-progress"]
    cmd += [
        "--epochs",
        "2",
        "--finetune-epochs",
        "1",
        "--max-iterations",
        "1",
        "--checkpointer",
        postgres_url,
    ]
    proc = subprocess.Popen(
        cmd, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 1200
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        if list((ws / "results").glob("run_*/baseline/train/epoch_*.pth")):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.2)
    proc.wait(timeout=120)
    assert killed, "training never wrote an epoch checkpoint"
    (run,) = sorted((ws / "results").glob("run_*"))
    before = loop_log.read_entries(run / "loop_log.jsonl")
    assert ("baseline", "train") not in {(e["iter"], e["stage"]) for e in before}

    done = _cli("deft", "resume", str(run), "--yes")
    assert done.returncode in (0, 3), done.stderr[-3000:]
    entries = loop_log.read_entries(run / "loop_log.jsonl")
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert entries[: len(before)] == before
    twice = [k for k, n in Counter((e["iter"], e["stage"]) for e in entries).items() if n > 1]
    assert twice == [] and entries[-1]["stage"] == "loop_stop"
    assert verify_chain(read_entries(run / "transcript.jsonl")) == []
    assert not (run / "checkpoints.sqlite").exists(), "the run checkpointed into SQLite, not Postgres"
    with psycopg.connect(postgres_url) as conn:
        (n,) = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s", (run.name,)).fetchone()
    assert n > 0


def test_a_url_that_does_not_connect_is_one_sentence_and_leaves_no_run(ws: Path) -> None:
    url = f"postgresql://alice:s3cret-pw@127.0.0.1:{_free_port()}/deft"
    proc = _cli("deft", "run", "--workspace", str(ws), "--yes", "--checkpointer", url, "--no-progress")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "[checkpointer] the checkpointer postgresql://alice:***@127.0.0.1:" in proc.stderr
    assert "does not connect" in proc.stderr and "s3cret-pw" not in proc.stderr + proc.stdout
    assert proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr
    assert not (ws / "results").exists() or not list((ws / "results").iterdir())


def test_a_database_that_is_not_there_is_one_sentence(ws: Path, postgres_url: str) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/no_such_db"
    proc = _cli("deft", "run", "--workspace", str(ws), "--yes", "--checkpointer", url, "--no-progress")
    assert proc.returncode == 2 and "does not connect" in proc.stderr and "no_such_db" in proc.stderr, (
        proc.stderr
    )
    assert not (ws / "results").exists() or not list((ws / "results").iterdir())
