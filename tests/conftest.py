"""Shared fixtures. `tiny_workspace` is synthesized once per session; copy it before modifying it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from create_fixtures import create_run  # noqa: F401
from docker_fixtures import docker_base_image, docker_engine  # noqa: F401

from specloop.skills.aoi.synth import synthesize_workspace


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete tiny synthetic DEFT workspace (seed 0). Read-only: copy it to change anything."""
    root = tmp_path_factory.mktemp("synth") / "tiny_ws"
    synthesize_workspace(root, size="tiny", seed=0, progress=False)
    return root


@pytest.fixture
def ws(tiny_workspace: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny workspace, free to change."""
    root = tmp_path / "ws"
    shutil.copytree(tiny_workspace, root)
    return root


@pytest.fixture(scope="session")
def finished_tiny_run(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workspace of one finished headless DEFT run on the tiny workspace (baseline + one
    iteration, 2 epochs), shared by the session. Read-only: copy the workspace to change anything."""
    ws = tmp_path_factory.mktemp("finished") / "ws"
    shutil.copytree(tiny_workspace, ws)
    argv = [
        "deft",
        "run",
        "--workspace",
        str(ws),
        "--yes",
        "--json",
        "--epochs",
        "2",
        "--max-iterations",
        "1",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "specloop", *argv, "--no-progress"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        timeout=600,
        check=False,
    )
    assert proc.returncode in (0, 3), proc.stderr[-3000:]
    (ws / "run_stdout.json").write_text(proc.stdout, encoding="utf-8")
    return ws
