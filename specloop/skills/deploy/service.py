"""One version of the service under compose (``-p <slug>-<color>``, host network), and the router.

Compose v1 has no ``up --wait``: health is polled with ``docker inspect``. Every container this
module starts carries the project's label, so ``down`` can find and remove all of them.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

from specloop.errors import SpecloopError
from specloop.skills.deploy.docker_cli import docker, last_line, run
from specloop.skills.deploy.image import StageFailed
from specloop.skills.deploy.render import DOCKER_DIR

ROUTER_DIR = Path("deploy") / "router"
STATE_DIR = Path("deploy") / "state"


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port`` (a bind succeeds; TIME_WAIT leftovers of a stopped
    version do not count, the service binds with SO_REUSEADDR too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def require_port(port: int) -> None:
    if not (0 < port < 65536):
        raise SpecloopError(f"--port {port} is not a TCP port (1-65535)", rule="port")
    if not port_free(port):
        raise SpecloopError(
            f"port {port} on 127.0.0.1 is in use; pass another --port or stop what listens there",
            rule="port-in-use",
        )


def compose_up(compose: list[str], root: Path, *, project: str, image: str, port: int, log: Path) -> str:
    """``compose -p project up -d`` with ``IMAGE`` and ``SERVICE_PORT``; the container id."""
    argv = [
        *compose,
        "-f",
        str(root / DOCKER_DIR / "docker-compose.yml"),
        "-p",
        project,
        "up",
        "-d",
        "--no-build",
    ]
    done = run(argv, timeout=180, cwd=root, env={"IMAGE": image, "SERVICE_PORT": str(port)}, log=log)
    if done.returncode != 0:
        raise StageFailed(
            f"compose up of {project} failed: {last_line(done)}",
            step="compose up",
            log=(done.stdout + done.stderr)[-4000:],
            rule="compose-up",
        )
    ids = run(
        [*compose, "-f", str(root / DOCKER_DIR / "docker-compose.yml"), "-p", project, "ps", "-q"],
        cwd=root,
        env={"IMAGE": image, "SERVICE_PORT": str(port)},
    )
    container = ids.stdout.strip().splitlines()
    if not container:
        raise StageFailed(
            f"compose up of {project} started no container", step="compose up", rule="compose-up"
        )
    return container[0]


def compose_down(compose: list[str], root: Path, *, project: str) -> None:
    """``compose -p project down``; whatever it leaves (a failed down) is removed by its compose label."""
    argv = [*compose, "-f", str(root / DOCKER_DIR / "docker-compose.yml"), "-p", project, "down"]
    # Compose interpolates the whole file even to take it down: IMAGE must be set to something.
    run(
        [*argv, "--remove-orphans", "--timeout", "10"],
        timeout=120,
        cwd=root,
        env={"IMAGE": "down", "SERVICE_PORT": "0"},
    )
    remove_labelled(f"com.docker.compose.project={project}")


def state(container: str) -> dict:
    done = docker("inspect", "--format", "{{json .State}}", container)
    return json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else {}


def running(container: str) -> bool:
    return bool(state(container).get("Running"))


def wait_healthy(container: str, *, timeout_s: float = 120) -> float:
    """Poll the container's health until ``healthy``; seconds waited. Unhealthy or exited is fatal."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        st = state(container)
        health = (st.get("Health") or {}).get("Status")
        if health == "healthy":
            return round(time.monotonic() - started, 2)
        if not st.get("Running"):
            raise StageFailed(
                f"container {container[:12]} exited with code {st.get('ExitCode')} before it was healthy",
                step="wait healthy",
                log=logs(container),
                rule="unhealthy",
            )
        if health == "unhealthy":
            raise StageFailed(
                f"container {container[:12]} is unhealthy",
                step="wait healthy",
                log=logs(container),
                rule="unhealthy",
            )
        time.sleep(1)
    raise StageFailed(
        f"container {container[:12]} was not healthy within {timeout_s:g} s",
        step="wait healthy",
        log=logs(container),
        rule="unhealthy",
    )


def logs(container: str, tail: int = 80) -> str:
    done = docker("logs", "--tail", str(tail), container)
    return (done.stdout + done.stderr)[-6000:]


def stats(container: str) -> dict[str, float]:
    """The engine's CPU % and memory (MB) for ``container`` right now."""
    done = docker("stats", "--no-stream", "--format", "{{json .}}", container, timeout=20)
    if done.returncode != 0 or not done.stdout.strip():
        return {}
    row = json.loads(done.stdout.strip().splitlines()[0])
    mem = row.get("MemUsage", "0MiB / 0").split("/")[0].strip()
    units = {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0, "B": 1 / 1024 / 1024, "kB": 1 / 1024}
    unit = next((u for u in ("KiB", "MiB", "GiB", "kB", "B") if mem.endswith(u)), "MiB")
    return {
        "cpu_percent": float(row.get("CPUPerc", "0%").rstrip("%") or 0),
        "memory_mb": round(float(mem[: -len(unit)] or 0) * units[unit], 1),
    }


def write_upstream(root: Path, port: int) -> Path:
    """Point the router at 127.0.0.1:``port``: one atomic rename the router notices on its next request."""
    directory = root / STATE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / ".upstream.partial"
    partial.write_text(f"127.0.0.1:{port}\n", encoding="utf-8")
    partial.chmod(0o644)
    partial.replace(directory / "upstream")
    return directory / "upstream"


def start_router(root: Path, *, name: str, image: str, port: int, label: str) -> str:
    """The router container on the public port, running the service image's Python."""
    router_dir = root / ROUTER_DIR
    router_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(__file__).with_name("router.py"), router_dir / "router.py")
    docker("rm", "-f", name)
    done = docker(
        "run",
        "-d",
        "--name",
        name,
        "--label",
        label,
        "--network",
        "host",
        "--restart",
        "no",
        "-e",
        f"SERVICE_PORT={port}",
        "-v",
        f"{router_dir}:/router:ro",
        "-v",
        f"{root / STATE_DIR}:/state:ro",
        image,
        "python",
        "/router/router.py",
        "--port",
        str(port),
        "--upstream-file",
        "/state/upstream",
    )
    if done.returncode != 0:
        raise StageFailed(
            f"the router on port {port} did not start: {last_line(done)}", step="router", rule="router"
        )
    return done.stdout.strip()


def remove_labelled(label: str) -> list[str]:
    """Remove every container carrying ``label`` (running or not); their ids."""
    ids = docker("ps", "-aq", "--filter", f"label={label}").stdout.split()
    if ids:
        docker("rm", "-f", *ids, timeout=120)
    return ids
