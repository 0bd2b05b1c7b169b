"""Deployment files without a Docker engine: rendering, compose checks, promtool, router, drift."""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml
from deploy_fixtures import digits_project, free_port_block  # noqa: F401

from specloop.errors import SpecloopError
from specloop.skills.deploy import drift, promtool, render, router
from specloop.skills.deploy.image import StageFailed
from specloop.skills.deploy.target import Sla, load_target

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")


@pytest.fixture
def project(digits_project: Path, tmp_path: Path) -> Path:  # noqa: F811 (the imported fixture)
    copy = tmp_path / "digits"
    shutil.copytree(digits_project, copy)
    return copy


def test_target_reads_sla_checkpoint_and_serving_requirements(project: Path) -> None:
    target = load_target(project)
    assert target.sla.latency_ms == 1000.0
    assert target.checkpoint == "outputs/best.pt"
    names = {line.split(">")[0] for line in target.requirements}
    assert {"torch", "fastapi", "uvicorn", "prometheus-client", "omegaconf", "pillow"} <= names
    assert not names & {"pytest", "ruff", "matplotlib", "nbclient", "ipykernel"}
    assert sum(target.training_shares.values()) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(("gpu", "base"), [(False, "python:3.11-slim"), (True, "nvidia/cuda")])
def test_dockerfile_variants(project: Path, gpu: bool, base: str) -> None:
    files = render.render_docker(load_target(project), port=8000, gpu=gpu, ca_bundle=None)
    text = files["Dockerfile"].read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(froms) == 2 and all(base in line for line in froms)
    assert text.index("pip install") < text.index("COPY src/")  # dependencies before the code
    assert "USER app" in text and "HEALTHCHECK" in text and "/health" in text
    assert "COPY outputs/best.pt /app/model/model.pt" in text
    ignore = (project / ".dockerignore").read_text().splitlines()
    assert ignore[1] == "*" and "!outputs/best.pt" in ignore and "!data/" not in ignore
    check = files["check_env"].read_text()
    assert f"GPU = {gpu}" in check
    compose = yaml.safe_load(files["compose"].read_text())
    assert compose["services"]["api"]["network_mode"] == "host"
    assert ("runtime" in compose["services"]["api"]) is gpu


def test_base_image_override_wheelhouse_and_ca_bundle(project: Path, tmp_path: Path) -> None:
    house = tmp_path / "wheels"
    house.mkdir()
    (house / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"not a real wheel")
    bundle = tmp_path / "ca.crt"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    files = render.render_docker(
        load_target(project),
        port=8000,
        base_image="specloop-base:bookworm",
        wheelhouse=house,
        ca_bundle=bundle,
    )
    text = files["Dockerfile"].read_text()
    assert text.count("FROM specloop-base:bookworm") == 2
    assert "--find-links /opt/wheelhouse" in text and "PIP_CERT=/opt/deps/ca.crt" in text
    assert "torch==2.13.0+cpu" in files["constraints"].read_text()
    assert (project / "deploy/docker/wheelhouse" / next(house.iterdir()).name).is_file()
    final_stage = text.split("\nFROM ")[-1]
    assert "wheelhouse" not in final_stage and "ca.crt" not in final_stage  # both stay in the deps stage
    with pytest.raises(SpecloopError, match=r"no directory with \.whl files"):
        render.render_docker(load_target(project), port=8000, wheelhouse=tmp_path / "nowhere")


def test_compose_with_a_bridge_network_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "docker-compose.yml"
    path.write_text('version: "2.4"\nservices:\n  api:\n    image: x\n    ports: ["8000:8000"]\n')
    with pytest.raises(
        SpecloopError, match=r"docker-compose.yml, line 3: service api has network_mode unset"
    ):
        render.check_compose(path)
    path.write_text(
        'version: "2.4"\nservices:\n  api:\n    image: x\n    network_mode: host\nnetworks:\n  n: {}\n'
    )
    with pytest.raises(SpecloopError, match=r"line 6: a networks: section makes a bridge network"):
        render.check_compose(path)
    path.write_text('version: "2.4"\nservices:\n  api:\n    image: x\n    network_mode: host\n')
    assert render.check_compose(path)["services"]["api"]["network_mode"] == "host"


@needs_promtool
def test_rendered_rules_pass_promtool_check_and_unit_tests(project: Path) -> None:
    files = render.render_monitoring(load_target(project), port=8000, job="digits", sla_p95_ms=1000)
    assert "SUCCESS" in promtool.check_rules(files["rules"])
    assert "SUCCESS" in promtool.test_rules(files["rules_test"])
    assert "SUCCESS" in promtool.check_config(files["prometheus"])
    rules = yaml.safe_load(files["rules"].read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert alerts == {"ServiceDown", "LatencyP95OverSla", "HighErrorRate", "PredictionDrift"}
    dashboard = json.loads(files["dashboard"].read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for metric in ("requests_total", "request_latency_seconds_bucket", "predictions_total", "up"):
        assert any(metric in e for e in exprs)
    assert yaml.safe_load(files["grafana_dashboards"].read_text())["providers"][0]["type"] == "file"


@needs_promtool
def test_a_broken_rule_file_fails_with_promtools_sentence(project: Path) -> None:
    files = render.render_monitoring(load_target(project), port=8000, job="digits", sla_p95_ms=1000)
    text = files["rules"].read_text().replace("up{job=", "up{{job=", 1)
    files["rules"].write_text(text)
    with pytest.raises(StageFailed, match=r"promtool check rules alerts.yml failed: .*parse error") as info:
        promtool.check_rules(files["rules"])
    assert info.value.rule == "promtool"


@needs_promtool
def test_a_rule_that_does_not_fire_fails_its_unit_test(project: Path) -> None:
    files = render.render_monitoring(load_target(project), port=8000, job="digits", sla_p95_ms=1000)
    text = files["rules"].read_text().replace('up{job="digits"} == 0', 'up{job="digits"} == 2')
    files["rules"].write_text(text)
    with pytest.raises(StageFailed, match=r"promtool test rules alerts_test\.yml failed"):
        promtool.test_rules(files["rules_test"])


def _backend(port: int, name: str, hits: list[str]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            return

        def do_GET(self) -> None:
            hits.append(name)
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_router_switches_upstream_with_no_failed_request(tmp_path: Path) -> None:
    port = free_port_block(3, start=23000)
    hits: list[str] = []
    old, new = _backend(port + 1, "old", hits), _backend(port + 2, "new", hits)
    upstream = tmp_path / "upstream"
    upstream.write_text(f"127.0.0.1:{port + 1}\n")
    proxy = ThreadingHTTPServer(("127.0.0.1", port), router.make_handler(router._Upstream(str(upstream))))
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    answers, failures = [], []
    per_client: list[list[str]] = [[] for _ in range(3)]
    stop = threading.Event()

    def client(seen: list[str]) -> None:
        with httpx.Client(timeout=5) as c:
            while not stop.is_set():
                try:
                    r = c.get(f"http://127.0.0.1:{port}/x")
                    (answers if r.status_code == 200 else failures).append(r.text)
                    seen.append(r.text)
                except httpx.HTTPError as exc:
                    failures.append(str(exc))

    threads = [threading.Thread(target=client, args=(seen,)) for seen in per_client]
    for t in threads:
        t.start()

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 30
        while len(answers) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    wait_for(20)
    before = len(answers)
    partial = tmp_path / ".upstream.partial"
    partial.write_text(f"127.0.0.1:{port + 2}\n")
    partial.replace(upstream)
    wait_for(before + 40)
    stop.set()
    for t in threads:
        t.join()
    for server in (proxy, old, new):
        server.shutdown()
        server.server_close()
    assert failures == []
    assert "old" in answers and "new" in answers
    for seen in per_client:  # a client's requests are sequential: once one reached new, all later ones do
        assert "old" not in seen[seen.index("new") :]


METRICS = """\
# TYPE request_latency_seconds histogram
request_latency_seconds_bucket{le="0.01",path="/predict"} 50.0
request_latency_seconds_bucket{le="0.1",path="/predict"} 90.0
request_latency_seconds_bucket{le="1.0",path="/predict"} 100.0
request_latency_seconds_bucket{le="+Inf",path="/predict"} 100.0
request_latency_seconds_count{path="/predict"} 100.0
request_latency_seconds_sum{path="/predict"} 3.0
# TYPE requests counter
requests_total{method="POST",path="/predict",status="200"} 98.0
requests_total{method="POST",path="/predict",status="500"} 2.0
# TYPE predictions counter
predictions_total{label="0"} 80.0
predictions_total{label="1"} 20.0
# TYPE prediction_score histogram
prediction_score_sum 60.0
prediction_score_count 100.0
"""


def test_drift_reads_latency_errors_and_class_shares() -> None:
    result = drift.measure(METRICS, sla=Sla(latency_ms=100.0), expected={"0": 0.5, "1": 0.5})
    # p95 rank 95 falls in (0.1, 1.0] holding 10 of the 100: 0.1 + 0.9 * 5/10 s.
    assert result.p95_ms == pytest.approx(550.0)
    assert result.error_rate == pytest.approx(0.02)
    assert result.shares == {"0": 0.8, "1": 0.2}
    assert result.max_share_gap == pytest.approx(0.3)
    assert result.mean_score == pytest.approx(0.6)
    assert result.drifted and len(result.findings) == 3
    calm = drift.measure(METRICS, sla=Sla(latency_ms=1000.0), expected={"0": 0.7, "1": 0.3})
    assert calm.findings == ["2.00% of /predict requests failed"]
