"""B2: the target project's virtual environment — a real, timed install — and its report."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from specloop.errors import HardStop
from specloop.ledger.files import atomic_write_json

INSTALL_RECORD = ".specloop-install.json"
INSTALL_TIMEOUT_S = 3600

# Run by the venv's own interpreter: what is installed there, torch and the GPU as it sees them.
_PROBE = r"""
import importlib.metadata as md, json, platform, sys
out = {"python_version": platform.python_version(), "executable": sys.executable,
       "packages_installed": sorted(({"name": d.metadata["Name"], "version": d.version}
                                      for d in md.distributions() if d.metadata["Name"]),
                                     key=lambda p: p["name"].lower())}
try:
    import torch
    out["torch_version"] = torch.__version__
    out["cuda_version"] = torch.version.cuda
    out["cuda_available"] = torch.cuda.is_available()
    out["gpus"] = [{"name": torch.cuda.get_device_name(i),
                    "memory_mb": round(torch.cuda.get_device_properties(i).total_memory / 2**20)}
                   for i in range(torch.cuda.device_count())]
except ImportError as exc:
    out["torch_version"] = None
    out["torch_error"] = str(exc)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Install:
    """One install of a requirements file into a venv: what ran, how it ended, how long it took."""

    venv: str
    requirements: str
    requirements_sha256: str
    constraint: str | None
    command: list[str]
    exit_code: int
    seconds: float
    log_path: str
    reused: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def install_venv(
    project: Path, venv_name: str, requirements: str, *, constraint: Path | None, log_path: Path
) -> Install:
    """`python -m venv NAME && NAME/bin/pip install -r REQUIREMENTS [-c CONSTRAINT]`, timed, its output
    kept in `log_path`. A venv whose recorded install matches the same requirements (and constraint)
    is reused; after a kill mid-install the venv is kept and pip skips what it already installed."""
    venv = project / venv_name
    req = project / requirements
    record_path = venv / INSTALL_RECORD
    constraint_text = str(constraint.resolve()) if constraint else None
    if record_path.is_file() and venv_python(venv).exists():
        done = json.loads(record_path.read_text(encoding="utf-8"))
        if done.get("requirements_sha256") == _sha(req) and done.get("constraint") == constraint_text:
            return Install(**{**done, "reused": True})
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pip = [str(venv_python(venv)), "-m", "pip", "install", "--no-input", "-r", requirements]
    if constraint is not None:
        pip += ["-c", constraint_text]
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        made = subprocess.run(
            [sys.executable, "-m", "venv", venv_name],
            cwd=project,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        code = made.returncode
        if code == 0:
            log.write(f"$ {' '.join(pip)}\n")
            log.flush()
            code = subprocess.run(
                pip, cwd=project, stdout=log, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S
            ).returncode
    seconds = round(time.monotonic() - started, 1)
    result = Install(venv_name, requirements, _sha(req), constraint_text, pip, code, seconds, str(log_path))
    if not result.ok:
        package, message = pip_failure(log_path.read_text(encoding="utf-8", errors="replace"))
        raise HardStop(
            "install-failed",
            f"`pip install -r {requirements}` failed after {seconds:.0f}s on {package}: {message} "
            f"(full output: {log_path})",
        )
    atomic_write_json(record_path, {k: v for k, v in asdict(result).items() if k != "reused"})
    return result


def pip_failure(output: str) -> tuple[str, str]:
    """(the package pip failed on, pip's message) from an install's output."""
    errors = [ln.strip() for ln in output.splitlines() if ln.strip().startswith("ERROR:")]
    message = (
        errors[0][len("ERROR:") :].strip() if errors else (output.strip().splitlines() or ["no output"])[-1]
    )
    m = re.search(
        r"(?:requirement|for|of|building wheel for|version of)\s+([A-Za-z0-9_.\-\[\]]+)", message, re.I
    )
    return (m.group(1).strip("()") if m else "an unnamed package"), message[:300]


def probe_venv(venv: Path, *, timeout_s: float = 120) -> dict[str, Any]:
    """What the venv itself reports: Python, every installed distribution, torch, CUDA and GPUs."""
    out = subprocess.run(
        [str(venv_python(venv)), "-c", _PROBE], capture_output=True, text=True, timeout=timeout_s
    )
    if out.returncode != 0:
        raise HardStop("env-probe", f"{venv_python(venv)} could not report its packages: {out.stderr[-300:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def host_facts(path: Path) -> dict[str, Any]:
    """CPU, RAM and free disk of this machine (where `path` lives)."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    ram_mb = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        m = re.search(r"MemTotal:\s+(\d+) kB", meminfo.read_text())
        ram_mb = round(int(m.group(1)) / 1024) if m else None
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "ram_mb": ram_mb,
        "disk_free_gb": round(shutil.disk_usage(path).free / 2**30, 1),
        "platform": platform.platform(),
    }


def env_report(install: Install, probe: dict[str, Any], host: dict[str, Any], env: str) -> dict[str, Any]:
    """The report's JSON: every field CREATE_FLOW B2 and VENV_CONFIG.md name."""
    gpus = probe.get("gpus") or []
    return {
        "env": env,
        "venv": install.venv,
        "requirements": install.requirements,
        "constraint": install.constraint,
        "python_version": probe["python_version"],
        "packages_installed": probe["packages_installed"],
        "torch_version": probe.get("torch_version"),
        "cuda_version": probe.get("cuda_version"),
        "cuda_available": bool(probe.get("cuda_available")),
        "gpu": gpus or None,
        **host,
        "install_seconds": install.seconds,
        "install_reused": install.reused,
        "install_command": install.command,
        "install_log": install.log_path,
    }


def render_env_md(report: dict[str, Any]) -> str:
    gpu = report["gpu"]
    gpu_text = ", ".join(f"{g['name']} ({g['memory_mb']} MB)" for g in gpu) if gpu else "none"
    reused = " (reused: the venv's recorded install matched)" if report["install_reused"] else ""
    lines = [
        "# Environment check",
        "",
        f"- env: `{report['env']}` (venv `{report['venv']}`, `{report['requirements']}`)",
        f"- python_version: {report['python_version']}",
        f"- torch: {report['torch_version']}; CUDA: {report['cuda_version'] or 'none'}; "
        f"cuda_available: {str(report['cuda_available']).lower()}",
        f"- GPU: {gpu_text}",
        f"- CPU: {report['cpu']} × {report['cpu_count']}; RAM {report['ram_mb']} MB; "
        f"free disk {report['disk_free_gb']} GB",
        f"- install: {report['install_seconds']:.1f} s{reused}; `{' '.join(report['install_command'][1:])}`",
        f"- constraint: {report['constraint'] or 'none'}",
        "",
        f"## packages_installed ({len(report['packages_installed'])})",
        "",
        "| package | version |",
        "|---|---|",
        *[f"| {p['name']} | {p['version']} |" for p in report["packages_installed"]],
    ]
    return "\n".join(lines) + "\n"
