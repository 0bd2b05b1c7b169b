"""What the sandbox hands back for one command: enough for a ledger to say what ran where and how."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TAIL_CHARS = 4000
# Bytes read from a stream's end for its tail: room for 4000 multi-byte characters.
_TAIL_BYTES = 4 * TAIL_CHARS


@dataclass(frozen=True)
class CommandRecord:
    """One command run in a sandbox; ``limit_hit`` and ``message`` say how it ended."""

    command: list[str]
    cwd: str
    sandbox: str
    exit_code: int
    seconds: float
    output_sha256: str
    stdout_tail: str
    stderr_tail: str
    log_path: str | None
    limits: dict[str, Any] = field(default_factory=dict)
    limit_hit: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        """The command exited 0 within its limits."""
        return self.exit_code == 0 and self.limit_hit is None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for a ledger or a graph state."""
        return {**asdict(self), "ok": self.ok}


def limit_message(limit_hit: str, limits: dict[str, Any]) -> str:
    """The sentence naming the breached limit, e.g. "the command exceeded its 2048 MB memory limit"."""
    if limit_hit == "memory":
        return f"the command exceeded its {limits['memory_mb']} MB memory limit"
    if limit_hit == "cpu":
        return f"the command exceeded its {limits['cpu_s']} s CPU-time limit"
    return f"the command exceeded its {limits['timeout_s']:g} s wall-clock limit and was killed"


def exit_message(exit_code: int) -> str:
    """How a command that hit no limit ended."""
    if exit_code < 0:
        return f"the command was killed by signal {-exit_code}"
    return f"the command exited {exit_code}"


def _tail(path: Path) -> str:
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - _TAIL_BYTES))
        return fh.read().decode("utf-8", errors="replace")[-TAIL_CHARS:]


def output_digest(stdout: Path, stderr: Path) -> str:
    """sha256 of stdout's bytes followed by stderr's: the sha256 of the kept log file too."""
    digest = hashlib.sha256()
    for path in (stdout, stderr):
        with path.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def keep_log(stdout: Path, stderr: Path, log_path: Path) -> None:
    """Write stdout then stderr to ``log_path`` under a temporary name, then rename it into place."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    partial = log_path.with_name(log_path.name + ".partial")
    with partial.open("wb") as out:
        for path in (stdout, stderr):
            with path.open("rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    out.write(block)
    os.replace(partial, log_path)


def build_record(
    *,
    argv: list[str],
    cwd: Path,
    sandbox: str,
    exit_code: int,
    seconds: float,
    stdout: Path,
    stderr: Path,
    log_path: Path | None,
    limits: dict[str, Any],
    limit_hit: str | None,
    note: str = "",
) -> CommandRecord:
    """Read the captured streams once into a record, keeping the full output when asked."""
    if log_path is not None:
        keep_log(stdout, stderr, log_path)
    message = limit_message(limit_hit, limits) if limit_hit else exit_message(exit_code)
    return CommandRecord(
        command=list(argv),
        cwd=str(cwd),
        sandbox=sandbox,
        exit_code=exit_code,
        seconds=round(seconds, 4),
        output_sha256=output_digest(stdout, stderr),
        stdout_tail=_tail(stdout),
        stderr_tail=_tail(stderr),
        log_path=str(log_path) if log_path is not None else None,
        limits=limits,
        limit_hit=limit_hit,
        message=message + note,
    )
