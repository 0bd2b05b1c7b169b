"""One owner per run: an OS file lock on `<run>/run.lock`, held by the process that writes the run.

`fcntl.flock` locks die with their holder, so a run whose process was SIGKILLed can be resumed at
once; no stale-lock cleanup exists or is needed. The holder writes its PID and command into the
lock file, so that a second process can say whom it met. The lock is re-entrant within a process
(a chat that reopens its own run keeps it); another process is refused with one sentence.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from specloop.errors import SpecloopError

LOCK_FILE = "run.lock"
_HOLDER_WAIT_S = 2.0  # a holder that has just taken the lock writes its PID right after
_URL_PASSWORD = re.compile(r"(://[^/\s:@]*:)[^@\s]*@")

_held: dict[Path, tuple[int, int]] = {}  # lock path → (fd, depth) held by this process
_guard = threading.Lock()


class RunBusy(SpecloopError):
    """Another live process holds the run."""

    default_rule = "run-busy"


def lock_path(run_dir: Path) -> Path:
    return Path(run_dir) / LOCK_FILE


def _command() -> str:
    """This process's command line, with any password in a URL (a Postgres DSN) masked."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    argv = ["specloop" if program == "__main__.py" else program, *sys.argv[1:]]
    return _URL_PASSWORD.sub(r"\1***@", " ".join(argv))


def holder(run_dir: Path) -> dict[str, Any] | None:
    """The PID, command and start time the lock file names, or None when it names none."""
    try:
        data = json.loads(lock_path(run_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def _refusal(run_dir: Path) -> RunBusy:
    deadline = time.monotonic() + _HOLDER_WAIT_S
    who = holder(run_dir)
    while who is None and time.monotonic() < deadline:
        time.sleep(0.05)
        who = holder(run_dir)
    named = (
        f"process {who['pid']} (`{who.get('command', '?')}`, since {who.get('since', '?')})"
        if who is not None
        else "another process"
    )
    return RunBusy(
        f"{run_dir} is held by {named}, which is still running it; wait for it to end (or stop it) "
        "and resume then; nothing was changed.",
        exit_code=2,
    )


@contextmanager
def hold_run(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` for this process, or raise :class:`RunBusy` naming the live holder."""
    path = lock_path(run_dir).resolve()
    with _guard:
        if path in _held:
            fd, depth = _held[path]
            _held[path] = (fd, depth + 1)
        else:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise SpecloopError(
                    f"{path}: cannot open the run's lock file ({exc.strerror}); the run directory "
                    "must be writable.",
                    rule="run-busy",
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise _refusal(path.parent) from None
            me = {
                "pid": os.getpid(),
                "command": _command(),
                "since": datetime.now().isoformat("T", "seconds"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
            _held[path] = (fd, 1)
    try:
        yield
    finally:
        with _guard:
            fd, depth = _held[path]
            if depth > 1:
                _held[path] = (fd, depth - 1)
            else:
                del _held[path]
                os.ftruncate(fd, 0)  # a released lock names no holder
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
