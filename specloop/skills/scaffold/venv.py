"""venv.md (A5): how to build the target project's environment, pinned to what was verified."""

from __future__ import annotations

import platform
import re
from importlib import metadata
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-") and (m := _NAME.match(line)):
            names.append(m.group(1))
    return names


def verified_versions(names: list[str]) -> dict[str, str | None]:
    """The version of each distribution in the interpreter that ran the acceptance commands."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def render_venv_md(project: Path, *, python_version: str | None = None) -> str:
    version = python_version or platform.python_version()
    major_minor = ".".join(version.split(".")[:2])
    cpu = requirement_names(project / "requirements-cpu.txt")
    pins = verified_versions(cpu)
    lines = [
        f"# Environment: {project.name}",
        "",
        f"- Python: {major_minor} (verified with {version})",
        "- CPU: `requirements-cpu.txt`; GPU: `requirements-gpu.txt` (the same packages; pip takes the CUDA",
        "  build of torch on Linux).",
        "",
        "## Commands",
        "",
        "CPU (the debug environment `specloop target run` creates and checks):",
        "",
        "```bash",
        f"python{major_minor} -m venv debug-cpu",
        "debug-cpu/bin/pip install -r requirements-cpu.txt",
        "debug-cpu/bin/python -m pytest -q",
        "debug-cpu/bin/python scripts/train.py --data data/mini --epochs 1",
        "```",
        "",
        "GPU:",
        "",
        "```bash",
        f"python{major_minor} -m venv debug-gpu",
        "debug-gpu/bin/pip install -r requirements-gpu.txt",
        "debug-gpu/bin/python scripts/train.py --data data/mini --epochs 1 --device cuda",
        "```",
        "",
        "## Verified versions",
        "",
        "Every acceptance command in `PROJECT_BUILD_LOG.md` passed with these versions; pin them",
        "(`pip install -r requirements-cpu.txt -c constraints-verified.txt`) to reproduce that run exactly.",
        "",
        "| package | verified version |",
        "|---|---|",
    ]
    lines += [f"| {name} | {pins[name] or 'not installed in the verifying interpreter'} |" for name in cpu]
    lines += [
        "",
        "## Mini dataset rule",
        "",
        "`python scripts/make_mini.py --out data/mini --seed 0` samples a stratified mini set with a fixed",
        "seed (the per-class count is the script's `--per-class`, default from the family); the dataset agent",
        "re-samples it by this rule and documents it in `mini_dataset.md`.",
        "",
    ]
    return "\n".join(lines)


def constraints_text(project: Path) -> str:
    pins = verified_versions(requirement_names(project / "requirements-cpu.txt"))
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()) if version)
