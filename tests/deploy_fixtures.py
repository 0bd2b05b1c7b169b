"""Session fixtures for the deploy tests: one digits project (rendered, mini set, one epoch) per session.

The project is rendered with ``render_project`` rather than ``specloop create`` (the same templates,
a minute faster), gets a requirements.md with a 1000 ms latency SLA, and is copied by tests that
change it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from specloop.families import get_family
from specloop.skills.scaffold.codegen import project_answers, render_project
from specloop.skills.scaffold.requirements import parse_requirement
from specloop.skills.scaffold.requirements_md import render_requirements_md

REQUIREMENT = "A small handwritten digit recognizer on a laptop CPU; latency under 1000 ms per request."


def _run(argv: list[str], cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900, env=env, check=False)
    assert done.returncode == 0, (
        f"{argv} exited {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    )


def make_digits_project(root: Path) -> Path:
    family = get_family("image_classification")
    project = root / "digits"
    render_project(project_answers(family, family.candidates[0], project_name="digits"), project)
    _run([sys.executable, "scripts/make_mini.py", "--out", "data/mini"], project)
    _run([sys.executable, "scripts/train.py", "--data", "data/mini", "--epochs", "1"], project)
    (project / "requirements.md").write_text(
        render_requirements_md(parse_requirement(REQUIREMENT)), encoding="utf-8"
    )
    return project


@pytest.fixture(scope="session")
def digits_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained digits project (small_cnn). Read-only: copy it to change anything."""
    return make_digits_project(tmp_path_factory.mktemp("deploy_project"))


def free_port_block(size: int = 3, start: int = 18000) -> int:
    """The first port P from ``start`` with P … P+size-1 all free on 127.0.0.1."""
    for port in range(start, 60000, 10):
        free = True
        for p in range(port, port + size):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", p))
                except OSError:
                    free = False
                    break
        if free:
            return port
    raise RuntimeError("no free block of ports")
