"""Run generated code with no network and with limits, and say what ran where.

``run(argv, cwd=..., kind="local" | "docker", ...)`` returns a :class:`CommandRecord` for every
command that started, whether it failed or breached a limit; it raises
:class:`~specloop.errors.SpecloopError` only for a sandbox that cannot be used here (an unknown
kind, Docker asked for with no engine or image). ``available()`` says which kinds work here.
See ``docs/sandbox.md`` for what each sandbox guarantees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from specloop.errors import SpecloopError
from specloop.sandbox.docker import engine_version, run_docker
from specloop.sandbox.local import network_isolation, run_local
from specloop.sandbox.memory import MemoryCgroup
from specloop.sandbox.record import CommandRecord

__all__ = ["KINDS", "CommandRecord", "available", "run"]

KINDS = ("local", "docker")


def run(
    argv: list[str],
    *,
    cwd: Path,
    kind: str = "local",
    timeout_s: float = 600,
    memory_mb: int | None = 4096,
    cpu_s: int | None = None,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    image: str | None = None,
    writable: Sequence[Path] = (),
    cpus: float | None = None,
) -> CommandRecord:
    """Run ``argv`` in the ``kind`` sandbox with its working directory ``cwd``.

    ``env`` is added to a clean environment (secret-looking names are dropped); ``log_path`` keeps
    stdout then stderr in one file. ``image``, ``writable`` (paths mounted read-write, the rest of
    ``cwd`` read-only) and ``cpus`` apply to the Docker sandbox only.
    """
    if kind not in KINDS:
        raise SpecloopError(f"unknown sandbox kind {kind!r}; use one of {', '.join(KINDS)}")
    cwd = Path(cwd)
    if not cwd.is_dir():
        raise SpecloopError(f"the sandbox's working directory {cwd} does not exist")
    if kind == "docker":
        return run_docker(
            list(argv),
            cwd=cwd,
            image=image,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            cpu_s=cpu_s,
            cpus=cpus,
            env=env,
            log_path=log_path,
            writable=writable,
        )
    return run_local(
        list(argv), cwd=cwd, timeout_s=timeout_s, memory_mb=memory_mb, cpu_s=cpu_s, env=env, log_path=log_path
    )


def available() -> dict[str, str]:
    """Each sandbox kind → "ok: how it isolates" or "unavailable: why", for environment reports."""
    prefix = network_isolation()
    network = (
        f"network namespace via {' '.join(['unshare', *prefix[1:]])}" if prefix else "NO network isolation"
    )
    memory = "memory by cgroup-v1" if MemoryCgroup.usable() else "memory by polling the session's PSS"
    report = {"local": f"ok: local:{'netns' if prefix else 'no-netns'}, {network}, {memory}"}
    try:
        report["docker"] = f"ok: Docker engine {engine_version()}, --network none"
    except SpecloopError as exc:
        report["docker"] = f"unavailable: {exc}"
    return report
