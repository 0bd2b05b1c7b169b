"""Start a command in a session of its own with its streams in files, and stop it at a limit."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.1


@dataclass(frozen=True)
class Outcome:
    returncode: int
    seconds: float
    timed_out: bool
    breach: str | None


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL every process still in the command's session (its process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def _exit_waiter(proc: subprocess.Popen) -> Iterator[Callable[[float], bool]]:
    """A wait of at most ``timeout`` s for the process's exit that wakes the moment it exits.

    A pidfd makes that immediate; ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms,
    which would add ~40 ms to every short command.
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):

        def polled(timeout: float) -> bool:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
            return True

        yield polled
        return
    try:
        yield lambda timeout: bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def supervise(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    stdout: Path,
    stderr: Path,
    check: Callable[[int], str | None] | None = None,
    stop: Callable[[subprocess.Popen], None] = kill_session,
) -> Outcome:
    """Run ``argv`` to its end, or stop it with ``stop`` past ``timeout_s`` or when ``check(pid)``
    names a breached limit; whatever it left running in its session is killed afterwards."""
    start = time.monotonic()
    deadline = start + timeout_s
    timed_out, breach = False, None
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            with _exit_waiter(proc) as exited:
                while not exited(max(0.0, min(POLL_S, deadline - time.monotonic()))):
                    if time.monotonic() >= deadline:
                        timed_out = True
                    elif check is not None:
                        breach = check(proc.pid)
                    if timed_out or breach:
                        stop(proc)
                        break
            proc.wait()
        finally:
            if proc.returncode is None:
                stop(proc)
                proc.wait()
            kill_session(proc)
    return Outcome(proc.returncode, time.monotonic() - start, timed_out, breach)
