"""`specloop deploy` on a real Docker engine: one digits project deployed per session.

The tests in this file run in order against that one deployment: checks of the first (blue)
version, a bad new version that must never take traffic, a good one that takes over, then
``--down``. The image is built once (base ``specloop-base:bookworm``, the CPU torch wheel from
/opt/wheels when it is there) and reused by tag.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml
from deploy_fixtures import digits_project, free_port_block  # noqa: F401

from specloop.skills.deploy.target import load_target

WHEELS = Path("/opt/wheels")


def specloop(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "specloop", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def deploy_args(project: Path, port: int, *extra: str) -> list[str]:
    args = [
        "deploy",
        str(project),
        "--yes",
        "--port",
        str(port),
        "--base-image",
        "specloop-base:bookworm",
        "--requests",
        "60",
        "--concurrency",
        "2",
        *extra,
    ]
    if WHEELS.is_dir() and list(WHEELS.glob("torch-*.whl")):
        args += ["--wheelhouse", str(WHEELS)]
    return args


def labelled(docker: str, project: Path) -> list[str]:
    label = f"specloop.deploy={load_target(project).deploy_id}"
    done = subprocess.run([docker, "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True)
    return done.stdout.split()


@pytest.fixture(scope="session")
def deployed(digits_project: Path, docker_base_image: str, docker_engine: str, tmp_path_factory):  # noqa: F811
    """(project, public port, the deploy command's JSON) for one deployment shared by this file."""
    project = tmp_path_factory.mktemp("deployed") / "digits"
    shutil.copytree(digits_project, project)
    port = free_port_block(3)
    done = specloop(*deploy_args(project, port, "--json"))
    try:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        yield project, port, json.loads(done.stdout)
    finally:
        specloop("deploy", str(project), "--down")


def sample(project: Path) -> str:
    return base64.b64encode(next((project / "data/mini/val").rglob("*.png")).read_bytes()).decode()


class Traffic:
    """Clients sending POST /predict to the public port until stopped; every answer is counted."""

    def __init__(self, port: int, image: str, clients: int = 2) -> None:
        self.url, self.image = f"http://127.0.0.1:{port}/predict", image
        self.ok: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(self.url, json={"inputs": [self.image]})
                    if r.status_code == 200 and "label" in r.json()["predictions"][0]:
                        self.ok[r.headers.get("x-upstream", "?")] += 1
                    else:
                        self.failures.append(f"{r.status_code} {r.text[:100]}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def test_the_first_version_serves_health_ready_and_predict(deployed, docker_engine: str) -> None:
    project, port, outcome = deployed
    assert outcome["mode"] == "docker" and outcome["color"] == "blue"
    assert len(labelled(docker_engine, project)) == 2  # the blue service and the router
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    assert httpx.get(f"{base}/ready").json() == {"status": "ready"}
    assert httpx.get(f"{base}/openapi.json").json()["paths"]["/predict"]
    assert "swagger" in httpx.get(f"{base}/docs").text.lower()
    prediction = httpx.post(f"{base}/predict", json={"inputs": [sample(project)]}).json()["predictions"][0]
    assert prediction["label"] in [str(d) for d in range(10)]
    assert "predictions_total" in httpx.get(f"{base}/metrics").text


def test_reports_record_the_image_the_smoke_test_and_the_sla(deployed) -> None:
    project, port, outcome = deployed
    log = (project / "container_env_check.log").read_text()
    assert "cuda_available: false" in log and "check: ok" in log and "torch: " in log
    env = (project / "docker_env_report.md").read_text()
    assert (
        "| docker_version | client" in env and "| compose_version | v" in env and "| gpu_passthrough |" in env
    )
    report = (project / "deploy_report.md").read_text()
    smoke = outcome["info"]["smoke"]
    assert smoke["errors"] == 0 and smoke["requests"] == 60 and smoke["p95_ms"] > 0
    assert f"| p95 latency | ≤ 1000 ms | {smoke['p95_ms']} ms |" in report
    assert f"curl -s -X POST http://127.0.0.1:{port}/predict" in report
    assert outcome["info"]["image_size_mb"] > 0 and outcome["info"]["layers"] > 0
    running = (project / "docker_running_report.md").read_text()
    ids = [item["id"] for item in load_target(project).requirement_items]
    assert ids and all(f"| {i} |" in running for i in ids)  # every requirement item reviewed
    readme = (project / "README.md").read_text()
    assert "## Deployment: measured SLAs" in readme and readme.count("specloop:deploy:start") == 1


def test_deployed_alert_rules_pass_promtool(deployed) -> None:
    project, _, _ = deployed
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed")
    mon = project / "deploy/monitoring"
    for argv in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run(["promtool", *argv], cwd=mon, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    assert yaml.safe_load((mon / "prometheus.yml").read_text())["scrape_configs"][0]["static_configs"][0][
        "targets"
    ] == [f"127.0.0.1:{deployed[1]}"]


def test_drift_command_reads_live_metrics(deployed) -> None:
    project, _, _ = deployed
    done = specloop("deploy", str(project), "--drift", "--json")
    assert done.returncode in (0, 3), done.stderr
    result = json.loads(done.stdout)
    assert result["predictions"] > 0 and result["drifted"] == (done.returncode == 3)
    report = (project / "drift_report.md").read_text()
    assert ("DRIFT" in report) == result["drifted"]


def test_a_bad_new_version_never_takes_traffic(deployed, docker_engine: str, tmp_path: Path) -> None:
    project, port, outcome = deployed
    good = outcome["info"]["image"]
    bad = good.replace(":", ":bad-")
    context = tmp_path / "bad"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {good}\nENV SERVICE_CHECKPOINT=/app/model/missing.pt\n")
    built = subprocess.run([docker_engine, "build", "-t", bad, str(context)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    with Traffic(port, sample(project)) as traffic:
        done = specloop(*deploy_args(project, port, "--image", bad))
    assert done.returncode == 2
    assert "cannot load" in done.stderr and "docker_error_report_" in done.stderr
    assert traffic.failures == [] and sum(traffic.ok.values()) > 0
    assert set(traffic.ok) == {f"127.0.0.1:{port + 1}"}  # only blue answered
    error = next(project.glob("docker_error_report_*.md")).read_text()
    assert "still serving: blue" in error and "missing.pt" in error
    state = json.loads((project / "deploy/state/deployment.json").read_text())
    assert state["active"] == "blue" and set(state["colors"]) == {"blue"}
    assert len(labelled(docker_engine, project)) == 2  # no green left behind
    subprocess.run([docker_engine, "rmi", bad], capture_output=True)


def test_a_good_new_version_takes_over_and_the_old_one_stops(deployed, docker_engine: str) -> None:
    project, port, _ = deployed
    with Traffic(port, sample(project)) as traffic:
        done = specloop(*deploy_args(project, port, "--json"))
        assert done.returncode == 0, done.stderr[-3000:]
        after, deadline = sum(traffic.ok.values()), time.monotonic() + 30
        while sum(traffic.ok.values()) < after + 10 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert json.loads(done.stdout)["color"] == "green"
    assert traffic.failures == []
    assert traffic.ok[f"127.0.0.1:{port + 1}"] > 0 and traffic.ok[f"127.0.0.1:{port + 2}"] > 0
    names = subprocess.run(
        [
            docker_engine,
            "ps",
            "--format",
            "{{.Names}}",
            "--filter",
            f"label=specloop.deploy={load_target(project).deploy_id}",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert any("green" in n for n in names) and not any("blue" in n for n in names)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port + 1)) != 0  # blue no longer listens


def test_down_leaves_nothing_running(deployed, docker_engine: str) -> None:
    project, port, _ = deployed
    done = specloop("deploy", str(project), "--down")
    assert done.returncode == 0, done.stderr
    assert labelled(docker_engine, project) == []
    assert not (project / "deploy/state/deployment.json").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health")


# --- bad input: one sentence, exit 2, nothing left running -------------------------------------------


@pytest.fixture
def fresh(digits_project: Path, tmp_path: Path) -> Path:  # noqa: F811
    copy = tmp_path / "digits"
    shutil.copytree(digits_project, copy)
    return copy


def _one_sentence(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return lines[-1]


def test_a_port_in_use_is_refused(fresh: Path, docker_engine: str) -> None:
    port = free_port_block(3, start=19000)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        line = _one_sentence(specloop(*deploy_args(fresh, port)))
    assert f"port {port} on 127.0.0.1 is in use" in line
    assert labelled(docker_engine, fresh) == []


def test_use_existing_without_a_dockerfile_is_refused(fresh: Path, docker_engine: str) -> None:
    line = _one_sentence(specloop(*deploy_args(fresh, free_port_block(3, start=19100), "--use-existing")))
    assert "deploy/docker/Dockerfile does not exist" in line


def test_a_compose_file_with_a_bridge_network_is_refused(fresh: Path, docker_engine: str) -> None:
    port = free_port_block(3, start=19200)
    from specloop.skills.deploy.render import render_docker

    render_docker(load_target(fresh), port=port, base_image="specloop-base:bookworm")
    compose = fresh / "deploy/docker/docker-compose.yml"
    compose.write_text(compose.read_text().replace("    network_mode: host\n", '    ports: ["8000:8000"]\n'))
    line = _one_sentence(specloop(*deploy_args(fresh, port, "--use-existing")))
    assert "service api has network_mode unset (bridge)" in line and "no bridge network" in line
    assert labelled(docker_engine, fresh) == []


def test_a_failing_build_writes_an_error_report_and_leaves_nothing(fresh: Path, docker_engine: str) -> None:
    port = free_port_block(3, start=19300)
    args = deploy_args(fresh, port)
    args[args.index("specloop-base:bookworm")] = "specloop-missing-base:none"
    line = _one_sentence(specloop(*args))
    assert "docker build of digits:" in line and "docker_error_report_1.md" in line
    report = (fresh / "docker_error_report_1.md").read_text()
    assert "failed step: image build" in report and "specloop-missing-base" in report
    assert labelled(docker_engine, fresh) == []
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_a_gpu_deployment_without_passthrough_stops_at_docker_env(fresh: Path, docker_engine: str) -> None:
    info = subprocess.run(
        [docker_engine, "info", "--format", "{{json .Runtimes}}"], capture_output=True, text=True
    )
    if "nvidia" in info.stdout:
        pytest.skip("this engine has the nvidia runtime")
    line = _one_sentence(specloop(*deploy_args(fresh, free_port_block(3, start=19400), "--gpu")))
    assert "a GPU deployment needs GPU passthrough, and this engine has none" in line
    assert "A GPU deployment stops here" in (fresh / "docker_env_report.md").read_text()
    assert not (fresh / "deploy").exists() and labelled(docker_engine, fresh) == []
