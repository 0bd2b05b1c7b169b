"""The docker and compose command lines, run with their output captured (no shell)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from specloop.errors import SpecloopError


def docker_bin() -> str:
    binary = shutil.which("docker")
    if binary is None:
        raise SpecloopError(
            "the deployment needs the docker command, and it is not on PATH", rule="docker-env"
        )
    return binary


def run(
    argv: Sequence[str],
    *,
    timeout: float = 60,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one command; ``log`` keeps its whole output. A timeout is an error of its own."""
    full_env = {**os.environ, "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0", **(env or {})}
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd, env=full_env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SpecloopError(
            f"`{' '.join(argv[:3])}` did not finish within {timeout:g} s", rule="docker"
        ) from exc
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(
            f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}exit {done.returncode}\n", encoding="utf-8"
        )
    return done


def docker(*args: str, timeout: float = 60, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run([docker_bin(), *args], timeout=timeout, log=log)


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    """The last non-empty line of a failed command's output: usually the reason."""
    lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {done.returncode}"
