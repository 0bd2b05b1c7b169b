"""Where a version of the service runs: a compose container, or — without Docker — a local process.

Both start one colour on its own port, say whether it still runs, read its memory and CPU, show its
log and stop it, and both run the router on the public port. A process backend says plainly in
every report that no container was used.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from specloop.skills.deploy import service

LABEL_KEY = "specloop.deploy"


class DockerBackend:
    mode = "docker"

    def __init__(self, root: Path, *, slug: str, compose: list[str]) -> None:
        self.root, self.slug, self.compose = root, slug, compose

    def project(self, color: str) -> str:
        return f"{self.slug}-{color}"

    def start(self, color: str, *, artifact: str, port: int) -> str:
        """Bring ``color`` up from the image ``artifact``; the container id."""
        log = self.root / service.STATE_DIR / f"compose-{color}.log"
        return service.compose_up(
            self.compose, self.root, project=self.project(color), image=artifact, port=port, log=log
        )

    def wait(self, handle: str, *, timeout_s: float) -> float:
        return service.wait_healthy(handle, timeout_s=timeout_s)

    def alive(self, handle: str) -> bool:
        return service.running(handle)

    def stats(self, handle: str) -> dict[str, float]:
        return service.stats(handle)

    def logs(self, handle: str) -> str:
        return service.logs(handle)

    def stop(self, color: str, handle: str | None) -> None:
        service.compose_down(self.compose, self.root, project=self.project(color))

    def start_router(self, *, artifact: str, port: int) -> str:
        return service.start_router(
            self.root, name=f"{self.slug}-router", image=artifact, port=port, label=f"{LABEL_KEY}={self.slug}"
        )

    def stop_all(self) -> list[str]:
        for color in ("blue", "green"):
            service.compose_down(self.compose, self.root, project=self.project(color))
        return service.remove_labelled(f"{LABEL_KEY}={self.slug}")


class ProcessBackend:
    """No Docker engine: ``scripts/serve.py`` as a local process in its own session, host network."""

    mode = "process (no container and no image: the service and the router run as local processes)"

    def __init__(self, root: Path, *, python: str | None = None) -> None:
        self.root, self.python = root, python or sys.executable

    def _spawn(self, argv: list[str], log: Path) -> str:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                argv, cwd=self.root, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        return str(proc.pid)

    def start(self, color: str, *, artifact: str, port: int) -> str:
        """Serve the checkpoint ``artifact`` as ``color``; the process id."""
        argv = [
            self.python,
            "scripts/serve.py",
            "--checkpoint",
            artifact,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        return self._spawn(argv, self.root / service.STATE_DIR / f"{color}.log")

    def wait(self, handle: str, *, timeout_s: float) -> float:
        return 0.0  # no health check of its own: readiness is polled on /ready

    def alive(self, handle: str) -> bool:
        try:
            os.kill(int(handle), 0)
        except (ProcessLookupError, ValueError):
            return False
        status = Path(f"/proc/{handle}/stat")
        return not (status.is_file() and status.read_text().split()[2] == "Z")

    def stats(self, handle: str) -> dict[str, float]:
        try:
            for line in Path(f"/proc/{handle}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return {"memory_mb": round(int(line.split()[1]) / 1024, 1)}
        except OSError:
            pass
        return {}

    def logs(self, handle: str) -> str:
        logs = sorted((self.root / service.STATE_DIR).glob("*.log"))
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)

    def stop(self, color: str, handle: str | None) -> None:
        if not handle or not self.alive(handle):
            return
        os.killpg(int(handle), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while self.alive(handle) and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.alive(handle):
            os.killpg(int(handle), signal.SIGKILL)

    def start_router(self, *, artifact: str, port: int) -> str:
        router = Path(service.__file__).with_name("router.py")
        upstream = self.root / service.STATE_DIR / "upstream"
        argv = [self.python, str(router), "--port", str(port), "--upstream-file", str(upstream)]
        return self._spawn(argv, self.root / service.STATE_DIR / "router.log")

    def stop_all(self) -> list[str]:
        return []  # the caller stops the pids it recorded
