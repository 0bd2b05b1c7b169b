"""Render the deployment files from ``specloop/templates/deploy/`` into the project's ``deploy/``.

Every file is written to a temporary name and renamed into place. Files the user already has are
rewritten only by a fresh render (``use_existing=False``); with ``use_existing`` the Dockerfile and
compose file must already be there and are checked, not replaced.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import jinja2
import yaml

from specloop.errors import SpecloopError
from specloop.skills.deploy.target import Target

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "deploy"
CPU_BASE = "python:3.11-slim"
GPU_BASE = "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DOCKER_DIR = Path("deploy") / "docker"
MONITORING_DIR = Path("deploy") / "monitoring"


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` under a temporary name beside ``path``, then rename it into place.

    An unchanged file is left alone, so its timestamp keeps Docker's build cache valid.
    """
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


def render_template(name: str, **values: Any) -> str:
    return _env().get_template(name).render(**values)


def _wheel_pins(wheelhouse: Path) -> list[str]:
    """``name==version`` for each wheel, so pip takes the local wheel over a newer one on the index."""
    pins = []
    for wheel in sorted(wheelhouse.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        pins.append(f"{name.replace('_', '-')}=={version}")
    return pins


def render_docker(
    target: Target,
    *,
    port: int,
    gpu: bool = False,
    base_image: str | None = None,
    wheelhouse: Path | None = None,
    ca_bundle: Path | None = None,
    memory_mb: int = 2048,
    cpus: float = 2.0,
) -> dict[str, Path]:
    """Write the Dockerfile, compose file, check script, pinned requirements and ``.dockerignore``.

    ``wheelhouse`` wheels are copied into the build context (``deploy/docker/wheelhouse``, git-ignored)
    and pinned, so e.g. a CPU torch wheel is installed instead of a multi-GB CUDA one; ``ca_bundle``
    is copied to ``deploy/docker/certs/ca.crt`` for pip inside the build (machines whose HTTPS is
    re-signed by a local CA).
    """
    root = target.root
    docker_dir = root / DOCKER_DIR
    house = docker_dir / "wheelhouse"
    shutil.rmtree(house, ignore_errors=True)
    pins: list[str] = []
    if wheelhouse is not None:
        if not wheelhouse.is_dir() or not list(wheelhouse.glob("*.whl")):
            raise SpecloopError(f"--wheelhouse {wheelhouse}: no directory with .whl files there")
        house.mkdir(parents=True)
        for wheel in sorted(wheelhouse.glob("*.whl")):
            shutil.copy2(wheel, house / wheel.name)
        pins = _wheel_pins(house)
    certs = docker_dir / "certs"
    shutil.rmtree(certs, ignore_errors=True)
    if ca_bundle is not None:
        if not ca_bundle.is_file():
            raise SpecloopError(f"--ca-bundle {ca_bundle}: no such file")
        certs.mkdir(parents=True)
        shutil.copy2(ca_bundle, certs / "ca.crt")
    variant = "gpu" if gpu else "cpu"
    values = {
        "project": target.name,
        "slug": target.slug,
        "deploy_id": target.deploy_id,
        "variant": variant,
        "gpu": gpu,
        "port": port,
        "base_image": base_image or (GPU_BASE if gpu else CPU_BASE),
        "checkpoint": target.checkpoint,
        "wheelhouse": bool(pins),
        "ca_bundle": ca_bundle is not None,
        "memory_mb": memory_mb,
        "cpus": f"{cpus:g}",
        "packages": sorted({line.split(">")[0].split("=")[0].split("<")[0] for line in target.requirements}),
    }
    header = f"# {target.name}: the packages the service imports (rendered by `specloop deploy`)\n"
    written = {
        "Dockerfile": write_atomic(docker_dir / "Dockerfile", render_template("Dockerfile.j2", **values)),
        "compose": write_atomic(
            docker_dir / "docker-compose.yml", render_template("docker-compose.yml.j2", **values)
        ),
        "check_env": write_atomic(docker_dir / "check_env.py", render_template("check_env.py.j2", **values)),
        "requirements": write_atomic(
            docker_dir / "requirements-serve.txt", header + "".join(f"{r}\n" for r in target.requirements)
        ),
        "constraints": write_atomic(
            docker_dir / "constraints.txt",
            "# local wheels pinned so pip takes them over the index\n" + "".join(f"{p}\n" for p in pins),
        ),
        "dockerignore": write_atomic(root / ".dockerignore", render_template("dockerignore.j2", **values)),
        "gitignore": write_atomic(docker_dir / ".gitignore", "wheelhouse/\ncerts/\n"),
    }
    return written


def check_compose(path: Path) -> dict[str, Any]:
    """Load a compose file and refuse what would make a bridge network on this machine.

    Compose v1 creates a default bridge network unless every service uses ``network_mode: host``
    (or ``none``); a ``networks:`` section always makes one.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecloopError(
            f"{path} does not exist; render it with `specloop deploy` (without --use-existing)"
        ) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
        raise SpecloopError(f"{path}, line {line}: not valid YAML") from None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict) or not data["services"]:
        raise SpecloopError(f"{path}, line 1: a compose file needs a services: mapping")
    lines = path.read_text(encoding="utf-8").splitlines()

    def line_of(word: str) -> int:
        return next((i for i, text in enumerate(lines, start=1) if text.strip().startswith(word)), 1)

    if "networks" in data:
        raise SpecloopError(
            f"{path}, line {line_of('networks:')}: a networks: section makes a bridge network, and this machine "
            "has none; use network_mode: host on every service"
        )
    for name, service in data["services"].items():
        mode = (service or {}).get("network_mode")
        if mode not in ("host", "none"):
            raise SpecloopError(
                f"{path}, line {line_of(name + ':')}: service {name} has network_mode {mode or 'unset (bridge)'}, "
                "and this machine has no bridge network; use network_mode: host"
            )
    return data


def render_monitoring(
    target: Target,
    *,
    port: int,
    job: str,
    sla_p95_ms: float,
    error_rate: float = 0.05,
    drift_share: float = 0.25,
) -> dict[str, Path]:
    """Prometheus config, alert rules and their promtool unit tests, a Grafana dashboard and provisioning."""
    mon = target.root / MONITORING_DIR
    labels = sorted(target.training_shares)
    values = {
        "project": target.name,
        "job": job,
        "port": port,
        "sla_s": round(sla_p95_ms / 1000.0, 6),
        "sla_ms": sla_p95_ms,
        "error_rate": error_rate,
        "drift_share": drift_share,
        "shares": target.training_shares,
        "labels": labels,
        "first_label": labels[0] if labels else "",
    }
    written = {
        "prometheus": write_atomic(mon / "prometheus.yml", render_template("prometheus.yml.j2", **values)),
        "rules": write_atomic(mon / "alerts.yml", render_template("alerts.yml.j2", **values)),
        "rules_test": write_atomic(mon / "alerts_test.yml", render_template("alerts_test.yml.j2", **values)),
        "dashboard": write_atomic(
            mon / "grafana" / "dashboards" / f"{target.slug}.json",
            json.dumps(json.loads(render_template("dashboard.json.j2", **values)), indent=2) + "\n",
        ),
        "grafana_dashboards": write_atomic(
            mon / "grafana" / "provisioning" / "dashboards" / "specloop.yml",
            render_template("grafana_dashboards.yml.j2", **values),
        ),
        "grafana_datasource": write_atomic(
            mon / "grafana" / "provisioning" / "datasources" / "prometheus.yml",
            render_template("grafana_datasource.yml.j2", **values),
        ),
    }
    return written
