"""What Docker this machine offers a deployment: client, daemon, API, compose and GPU passthrough.

Nothing is installed here: missing pieces come back as the platform's install steps, for a person
to confirm and run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

from specloop.errors import SpecloopError

INSTALL_STEPS = {
    "docker": "Debian/Ubuntu: sudo apt-get install -y docker.io; then start the engine "
    "(systemctl start docker, or dockerd --bridge=none --iptables=false --ip-masq=false where no bridge may exist)",
    "compose": "Debian/Ubuntu: sudo apt-get install -y docker-compose (v1), or install the docker compose v2 plugin",
    "gpu": "NVIDIA: install nvidia-container-toolkit, run nvidia-ctk runtime configure --runtime=docker, restart dockerd",
}


@dataclass(frozen=True)
class DockerEnv:
    client_version: str | None
    server_version: str | None
    api_version: str | None
    compose: list[str] | None  # the argv prefix that runs compose, e.g. ["docker-compose"]
    compose_version: str | None
    gpu_passthrough: str | None  # "nvidia runtime" / "CDI devices: …" / None
    runtimes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def engine_ok(self) -> bool:
        return self.server_version is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run(argv: list[str], timeout: float = 20) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _compose() -> tuple[list[str] | None, str | None]:
    docker = shutil.which("docker")
    if docker:
        done = _run([docker, "compose", "version", "--short"])
        if done is not None and done.returncode == 0 and done.stdout.strip():
            return [docker, "compose"], f"v2 {done.stdout.strip()}"
    v1 = shutil.which("docker-compose")
    if v1:
        done = _run([v1, "version", "--short"])
        if done is not None and done.returncode == 0 and done.stdout.strip():
            return [v1], f"v1 {done.stdout.strip()}"
    return None, None


def detect() -> DockerEnv:
    """Probe the docker client, the daemon (``docker info``) and compose; never raises."""
    problems: list[str] = []
    docker = shutil.which("docker")
    client = server = api = gpu = None
    runtimes: list[str] = []
    if docker is None:
        problems.append("no docker client on PATH")
    else:
        done = _run([docker, "version", "--format", "{{json .}}"])
        info: dict[str, Any] = {}
        if done is not None and done.stdout.strip():
            try:
                info = json.loads(done.stdout)
            except json.JSONDecodeError:
                info = {}
        client = (info.get("Client") or {}).get("Version")
        server = (info.get("Server") or {}).get("Version")
        api = (info.get("Server") or {}).get("ApiVersion")
        if server is None:
            reason = (done.stderr.strip().splitlines() or ["no answer"])[-1] if done else "no answer"
            problems.append(f"no Docker engine answers ({reason})")
        else:
            done = _run([docker, "info", "--format", "{{json .}}"])
            details = json.loads(done.stdout) if done is not None and done.returncode == 0 else {}
            runtimes = sorted((details.get("Runtimes") or {}).keys())
            cdi = [
                d.get("ID", "") for d in details.get("DiscoveredDevices") or [] if d.get("Source") == "cdi"
            ]
            if "nvidia" in runtimes:
                gpu = "nvidia runtime"
            elif any("nvidia.com/gpu" in d for d in cdi):
                gpu = f"CDI devices: {', '.join(cdi)}"
    compose, compose_version = _compose()
    if compose is None:
        problems.append("no docker compose (v2 plugin) or docker-compose (v1)")
    return DockerEnv(client, server, api, compose, compose_version, gpu, runtimes, problems)


def require(env: DockerEnv, *, gpu: bool) -> None:
    """Stop with one sentence when this machine cannot run the deployment asked for."""
    if gpu and env.engine_ok and env.gpu_passthrough is None:
        raise SpecloopError(
            f"a GPU deployment needs GPU passthrough, and this engine has none (runtimes: {', '.join(env.runtimes)}; "
            f"no CDI nvidia.com/gpu device); {INSTALL_STEPS['gpu']}",
            rule="docker-env",
        )
    if env.engine_ok and env.compose is None:
        raise SpecloopError(
            f"the deployment needs compose, and none is installed; {INSTALL_STEPS['compose']}",
            rule="docker-env",
        )


def render_report(env: DockerEnv, *, gpu: bool, mode: str) -> str:
    """``docker_env_report.md``: the versions found and what follows for this job."""
    rows = [
        (
            "docker_version",
            f"client {env.client_version or 'missing'}, engine {env.server_version or 'not answering'}",
        ),
        ("api_version", env.api_version or "—"),
        ("compose_version", env.compose_version or "missing"),
        ("compose_command", " ".join(env.compose) if env.compose else "—"),
        ("gpu_passthrough", env.gpu_passthrough or f"none (runtimes: {', '.join(env.runtimes) or '—'})"),
        ("job", "GPU image" if gpu else "CPU image"),
        ("mode", mode),
    ]
    lines = ["# Docker environment report", "", "| key | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "## What follows for this job", ""]
    if not env.engine_ok:
        lines.append(
            "- No Docker engine: the service runs as a local process instead, and every report says so."
        )
        lines.append(f"- To deploy in a container: {INSTALL_STEPS['docker']}.")
    else:
        lines.append(
            "- The engine answers: the image is built and the service runs under compose, host network."
        )
    if env.engine_ok and env.compose is None:
        lines.append(f"- Compose is missing: {INSTALL_STEPS['compose']}.")
    if gpu and env.gpu_passthrough is None:
        lines.append(f"- A GPU deployment stops here: no GPU passthrough. {INSTALL_STEPS['gpu']}.")
    for problem in env.problems:
        lines.append(f"- found: {problem}")
    return "\n".join(lines) + "\n"
