"""The local sandbox: a subprocess in a network namespace of its own, with wall, CPU and memory limits.

Network: as root, ``unshare --net``; otherwise ``unshare --user --map-root-user --net`` (an
unprivileged user namespace, where the kernel allows one). Either way the command gets a fresh
namespace whose only interface is its own loopback: connecting to a server on the host's
127.0.0.1 is refused and any outside address fails at once with "Network is unreachable", so no
packet leaves. Where neither works (a container without ``CAP_SYS_ADMIN`` and with user
namespaces disabled), the documented fallback runs the command without network isolation; the
record then says ``sandbox: "local:no-netns"`` and its message says so.

Limits: the wall clock (the whole session is SIGKILLed), CPU seconds (``RLIMIT_CPU``) and memory
(see :mod:`specloop.sandbox.memory`). The command starts with a clean environment
(:mod:`specloop.sandbox.environment`) and a fresh temporary ``HOME``. The local sandbox does not
isolate the file system: ``writable`` is honoured by the Docker sandbox only.
"""

from __future__ import annotations

import functools
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from specloop.errors import SpecloopError
from specloop.sandbox._supervise import kill_session, supervise
from specloop.sandbox.environment import clean_env
from specloop.sandbox.memory import MemoryCgroup, session_pss_bytes
from specloop.sandbox.record import CommandRecord, build_record

LAUNCHER = Path(__file__).with_name("_launch.py")
MEMORY_ENFORCERS = ("auto", "cgroup-v1", "pss-poll")
_NETNS_PREFIXES = (["--net"], ["--user", "--map-root-user", "--net"])
_NO_NETNS_NOTE = "; it ran without network isolation because no network namespace can be made here"


def _launch(
    argv: list[str], *, cgroup: Path | None = None, cpu_s: int | None = None, loopback: bool
) -> list[str]:
    config = [str(cgroup) if cgroup else "-", str(cpu_s) if cpu_s else "-", "1" if loopback else "-"]
    return [sys.executable, "-I", "-S", str(LAUNCHER), *config, *argv]


@functools.cache
def network_isolation() -> tuple[str, ...]:
    """The ``unshare`` command line that gives a command its own network namespace here, or ()."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for flags in _NETNS_PREFIXES:
        prefix = (unshare, *flags)
        probe = [*prefix, *_launch(["true"], loopback=True)]
        try:
            done = subprocess.run(probe, capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return prefix
    return ()


def _cpu_breach(returncode: int) -> bool:
    # The command itself, or a shell reporting a child that RLIMIT_CPU stopped.
    return returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU)


def run_local(
    argv: list[str],
    *,
    cwd: Path,
    timeout_s: float = 600,
    memory_mb: int | None = 4096,
    cpu_s: int | None = None,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    memory_by: str = "auto",
) -> CommandRecord:
    """Run ``argv`` in the local sandbox; ``memory_by`` picks the memory enforcer (tests pin one)."""
    if memory_by not in MEMORY_ENFORCERS:
        raise SpecloopError(
            f"unknown memory enforcer {memory_by!r}; use one of {', '.join(MEMORY_ENFORCERS)}"
        )
    prefix = list(network_isolation())
    with tempfile.TemporaryDirectory(prefix="specloop-sandbox-") as tmp:
        home = Path(tmp, "home")
        home.mkdir()
        command_env, dropped = clean_env(env, home=str(home))
        group = MemoryCgroup.create(memory_mb) if memory_mb and memory_by != "pss-poll" else None
        if memory_by == "cgroup-v1" and group is None:
            raise SpecloopError(
                "the cgroup-v1 memory enforcer is not usable here (it needs root and cgroup v1)"
            )
        check = None
        if memory_mb and group is None:
            limit = memory_mb << 20

            def check(pid: int) -> str | None:
                return "memory" if session_pss_bytes(pid) > limit else None

        def stop(proc: subprocess.Popen) -> None:
            kill_session(proc)
            if group is not None:
                group.kill_all()

        launch = _launch(list(argv), cgroup=group.path if group else None, cpu_s=cpu_s, loopback=bool(prefix))
        try:
            outcome = supervise(
                [*prefix, *launch],
                cwd=cwd,
                env=command_env,
                timeout_s=timeout_s,
                stdout=Path(tmp, "stdout"),
                stderr=Path(tmp, "stderr"),
                check=check,
                stop=stop,
            )
            oom = group is not None and group.oom_killed()
        finally:
            if group is not None:
                group.remove()
        if outcome.breach or oom:
            limit_hit: str | None = "memory"
        elif outcome.timed_out:
            limit_hit = "timeout"
        else:
            limit_hit = "cpu" if cpu_s and _cpu_breach(outcome.returncode) else None
        limits = {
            "timeout_s": timeout_s,
            "memory_mb": memory_mb,
            "cpu_s": cpu_s,
            "memory_by": (group.name if group else "pss-poll") if memory_mb else None,
            "network": " ".join(["unshare", *prefix[1:]]) if prefix else "none",
            "env_dropped": dropped,
        }
        return build_record(
            argv=list(argv),
            cwd=cwd,
            sandbox="local:netns" if prefix else "local:no-netns",
            exit_code=outcome.returncode,
            seconds=outcome.seconds,
            stdout=Path(tmp, "stdout"),
            stderr=Path(tmp, "stderr"),
            log_path=log_path,
            limits=limits,
            limit_hit=limit_hit,
            note="" if prefix else _NO_NETNS_NOTE,
        )
