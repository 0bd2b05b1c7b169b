"""Build the image, measure it, and run its environment check into ``container_env_check.log``."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from specloop.errors import SpecloopError
from specloop.skills.deploy.docker_cli import docker, last_line
from specloop.skills.deploy.render import DOCKER_DIR, write_atomic

BUILD_TIMEOUT_S = 1800


class StageFailed(SpecloopError):
    """A deployment step failed after it started; the caller writes a docker_error_report_N.md."""

    default_rule = "deploy"

    def __init__(self, message: str, *, step: str, log: str = "", rule: str | None = None) -> None:
        super().__init__(message, rule=rule)
        self.step = step
        self.log = log


@dataclass(frozen=True)
class ImageResult:
    tag: str
    build_seconds: float
    size_mb: float
    layers: int
    base_image: str
    build_log: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_image(root: Path, *, tag: str, base_image: str, timeout_s: float = BUILD_TIMEOUT_S) -> ImageResult:
    """``docker build --network host`` from the project root with deploy/docker/Dockerfile."""
    log = root / DOCKER_DIR / "build.log"
    started = time.monotonic()
    done = docker(
        "build",
        "--network",
        "host",
        "-f",
        str(root / DOCKER_DIR / "Dockerfile"),
        "-t",
        tag,
        str(root),
        timeout=timeout_s,
        log=log,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise StageFailed(
            f"docker build of {tag} failed: {last_line(done)}",
            step="image build",
            log=(done.stdout + done.stderr)[-6000:],
            rule="image-build",
        )
    measured = facts(tag)
    return ImageResult(
        tag=tag,
        build_seconds=round(seconds, 1),
        size_mb=measured["image_size_mb"],
        layers=measured["layers"],
        base_image=base_image,
        build_log=str(log),
    )


def exists(tag: str) -> bool:
    return docker("image", "inspect", tag).returncode == 0


def facts(tag: str) -> dict[str, Any]:
    """Size (MB) and layer count of an image on this engine."""
    done = docker("image", "inspect", "--format", "{{.Size}} {{len .RootFS.Layers}}", tag)
    if done.returncode != 0:
        raise SpecloopError(f"image {tag} is not on this engine; build it or drop --image", rule="image")
    size, layers = done.stdout.split()
    return {"image_size_mb": round(int(size) / 1e6, 1), "layers": int(layers), "build_seconds": 0.0}


def check_image(root: Path, tag: str, *, gpu: bool, log_path: Path) -> dict[str, str]:
    """Run the image's check script (no network) and keep its output; a failed check is fatal."""
    argv = ["run", "--rm", "--network", "none"]
    if gpu:
        argv += ["--gpus", "all"]
    done = docker(*argv, tag, "python", "/app/deploy/check_env.py", timeout=300)
    text = done.stdout + done.stderr
    write_atomic(log_path, f"# container_env_check for {tag}\n{text}exit: {done.returncode}\n")
    values = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            values[key.strip()] = value.strip()
    if done.returncode != 0:
        raise StageFailed(
            f"the image check of {tag} failed ({log_path.name}): {last_line(done)}",
            step="image check",
            log=text[-4000:],
            rule="image-check",
        )
    return values
