"""`specloop deploy --no-docker`: the same service as local processes, and reports that say so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from deploy_fixtures import digits_project, free_port_block  # noqa: F401

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="the monitoring stage needs promtool"
)


def specloop(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "specloop", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )


def test_without_docker_the_service_runs_as_a_process_and_the_reports_say_so(
    digits_project: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    project = tmp_path / "digits"
    shutil.copytree(digits_project, project)
    port = free_port_block(3, start=21000)
    done = specloop("deploy", str(project), "--yes", "--no-docker", "--port", str(port), "--requests", "40")
    try:
        assert done.returncode == 0, done.stderr[-3000:]
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/ready").json() == {"status": "ready"}
        report = (project / "deploy_report.md").read_text()
        assert "- mode: process (no container and no image" in report
        assert "image: none (local process)" in report
        assert "mode: process" in (project / "docker_running_report.md").read_text()
        assert not (project / "container_env_check.log").exists()  # no fake container result
    finally:
        stopped = specloop("deploy", str(project), "--down")
    assert stopped.returncode == 0 and "router" in stopped.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port + 1}/health", timeout=2)
