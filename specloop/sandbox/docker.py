"""The Docker sandbox: ``docker run --network none`` with the project mounted read-only.

The container gets only a loopback interface (connects fail with "Network is unreachable"), the
command's working directory bind-mounted read-only at the same path, each ``writable`` path
bind-mounted read-write over it, a read-only root file system with a tmpfs ``/tmp`` as ``HOME``,
an init process (``--init``, so the command is not PID 1), no capabilities,
``no-new-privileges``, the caller's uid:gid, and ``--memory`` (swap included), ``--cpus``,
``--pids-limit`` and an ``RLIMIT_CPU`` ulimit.

It drives the ``docker`` CLI rather than the Python SDK: the container's stdout and stderr then
stream straight into the same files, under the same supervisor, as the local sandbox's (no log
demultiplexing, one timeout path), and :func:`docker_argv` is a command a person can paste to
reproduce a run. The container is created with a name and without ``--rm`` so ``docker inspect``
can still read ``State.OOMKilled`` after it ends; it is removed right after. A timeout
``docker kill``s it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from specloop.errors import SpecloopError
from specloop.sandbox._supervise import kill_session, supervise
from specloop.sandbox.environment import clean_env
from specloop.sandbox.record import CommandRecord, build_record

PIDS_LIMIT = 1024
CONTAINER_HOME = "/tmp"
_EXIT_SIGXCPU = 128 + 24


def docker_binary() -> str:
    """The docker client on PATH; SpecloopError where there is none."""
    binary = shutil.which("docker")
    if binary is None:
        raise SpecloopError("the docker sandbox needs the docker command, and it is not on PATH")
    return binary


def _docker(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [docker_binary(), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SpecloopError(f"docker {args[0]} did not answer within {timeout:g} s") from exc


def engine_version() -> str:
    """The engine's version; SpecloopError (one sentence) where no engine answers."""
    done = _docker("version", "--format", "{{.Server.Version}}", timeout=15)
    if done.returncode != 0 or not done.stdout.strip():
        reason = (done.stderr.strip().splitlines() or ["no answer"])[-1]
        raise SpecloopError(f"the docker sandbox needs a running Docker engine, and none answers: {reason}")
    return done.stdout.strip()


def _require_image(image: str | None) -> str:
    if not image:
        raise SpecloopError("the docker sandbox needs an image (pass image=...)")
    engine_version()
    if _docker("image", "inspect", image).returncode != 0:
        raise SpecloopError(f"docker image {image} is not on this engine; build or import it first")
    return image


def docker_argv(
    argv: Sequence[str],
    *,
    name: str,
    image: str,
    cwd: Path,
    env: Mapping[str, str],
    memory_mb: int | None,
    cpu_s: int | None,
    cpus: float | None,
    writable: Sequence[Path],
) -> list[str]:
    """The ``docker run`` command line for one sandboxed command."""
    cmd = [
        docker_binary(),
        "run",
        "--name",
        name,
        "--network",
        "none",
        "--user",
        f"{os.getuid()}:{os.getgid()}",
    ]
    # --init: the command is not PID 1, which the kernel shields from SIGXCPU and default-action signals.
    cmd += [
        "--init",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--pids-limit",
        str(PIDS_LIMIT),
    ]
    cmd += ["--read-only", "--tmpfs", f"{CONTAINER_HOME}:rw,exec,mode=1777"]
    if memory_mb:
        cmd += ["--memory", f"{memory_mb}m", "--memory-swap", f"{memory_mb}m"]
    if cpus:
        cmd += ["--cpus", f"{cpus:g}"]
    if cpu_s:
        cmd += ["--ulimit", f"cpu={cpu_s}:{cpu_s + 1}"]
    cmd += ["-v", f"{cwd}:{cwd}:ro"]
    for path in writable:
        cmd += ["-v", f"{path}:{path}:rw"]
    cmd += ["-w", str(cwd)]
    for key, value in env.items():
        cmd += ["-e", f"{key}={value}"]
    return [*cmd, image, *argv]


def _state(name: str) -> dict[str, object]:
    done = _docker("inspect", "--format", "{{json .State}}", name)
    return json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else {}


def run_docker(
    argv: list[str],
    *,
    cwd: Path,
    image: str | None,
    timeout_s: float = 600,
    memory_mb: int | None = 4096,
    cpu_s: int | None = None,
    cpus: float | None = None,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    writable: Sequence[Path] = (),
) -> CommandRecord:
    """Run ``argv`` in a fresh container of ``image``; see the module docstring for what it guarantees."""
    image = _require_image(image)
    cwd = cwd.resolve()
    paths = [Path(p).resolve() for p in writable]
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
    name = f"specloop-sandbox-{uuid.uuid4().hex[:12]}"
    command_env, dropped = clean_env(env, home=CONTAINER_HOME)
    command_env.pop("PATH")  # the image's own PATH, not the host's
    cmd = docker_argv(
        argv,
        name=name,
        image=image,
        cwd=cwd,
        env=command_env,
        memory_mb=memory_mb,
        cpu_s=cpu_s,
        cpus=cpus,
        writable=paths,
    )

    def stop(proc: subprocess.Popen) -> None:
        _docker("kill", name)
        kill_session(proc)

    with tempfile.TemporaryDirectory(prefix="specloop-sandbox-") as tmp:
        try:
            outcome = supervise(
                cmd,
                cwd=cwd,
                env=os.environ,
                timeout_s=timeout_s,
                stdout=Path(tmp, "stdout"),
                stderr=Path(tmp, "stderr"),
                stop=stop,
            )
            state = _state(name)
        finally:
            _docker("rm", "-f", name)
        exit_code = int(state.get("ExitCode", outcome.returncode))  # type: ignore[arg-type]
        if state.get("OOMKilled"):
            limit_hit = "memory"
        elif outcome.timed_out:
            limit_hit = "timeout"
        elif cpu_s and exit_code == _EXIT_SIGXCPU:
            limit_hit = "cpu"
        else:
            limit_hit = None
        limits = {
            "timeout_s": timeout_s,
            "memory_mb": memory_mb,
            "cpu_s": cpu_s,
            "cpus": cpus,
            "pids": PIDS_LIMIT,
            "memory_by": "docker" if memory_mb else None,
            "network": "none",
            "writable": [str(p) for p in paths],
            "env_dropped": dropped,
        }
        return build_record(
            argv=list(argv),
            cwd=cwd,
            sandbox=f"docker:{image}",
            exit_code=exit_code,
            seconds=outcome.seconds,
            stdout=Path(tmp, "stdout"),
            stderr=Path(tmp, "stderr"),
            log_path=log_path,
            limits=limits,
            limit_hit=limit_hit,
        )
