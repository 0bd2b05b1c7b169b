"""The dashboard over a real registry (MLflow store in a tiny workspace) and real watcher records:
served by uvicorn on a loopback port, rendered in headless Chromium (screenshot and DOM), pause and
resume through its POST endpoints, secrets from `.env` masked everywhere it shows text."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from cli_helpers import CHROMIUM, chromium
from fastapi.testclient import TestClient
from PIL import Image

from specloop.dashboard import create_app
from specloop.dashboard.chart import SERIES
from specloop.skills.registry.journal import log_event
from specloop.skills.registry.layout import WatchLayout
from specloop.skills.registry.store import ModelRegistry

SECRET = "PLANTED-dash-token-31337"
# (golden, KPI, holdout, val) FAR per version, oldest first; the last one is rejected by the gate
METRICS = [(0.060, 0.070, 0.080, 0.020), (0.040, 0.050, 0.055, 0.015), (0.045, 0.052, 0.050, 0.016)]
DEADLINE_S = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def watched_ws(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three registered versions (champion, archived, rejected) and a few watcher events."""
    ws = tmp_path_factory.mktemp("dash") / "ws"
    shutil.copytree(tiny_workspace, ws)
    (ws / ".env").write_text(
        f"SPECLOOP_TELEGRAM_TOKEN={SECRET}\nSPECLOOP_TELEGRAM_CHAT_ID=7\n", encoding="utf-8"
    )
    src = ws / "results" / "scratch"
    src.mkdir(parents=True)
    registry = ModelRegistry(ws)
    vids = []
    for i, (golden, kpi, holdout, val) in enumerate(METRICS):
        checkpoint = src / f"model{i}.pth"
        checkpoint.write_bytes(f"checkpoint {i}".encode() * 64)
        rec = registry.register(
            checkpoint=checkpoint,
            files={"spec.yaml": ws / "specs" / "baseline_spec.yaml"},
            data_hash=f"{i:02d}" * 32,
            command=f"specloop watch {ws} --once",
            metrics={"golden_far": golden, "kpi_far": kpi, "holdout_far": holdout, "val_far": val},
            golden_hash="g" * 64,
            round_id=f"r{i}",
        )
        vids.append(rec["version"])
        if i < 2:
            registry.promote(rec["version"])
        else:
            registry.set_status(rec["version"], "rejected")
    log_event(ws, "promoted", f"{vids[1]} is champion (golden FAR 6.00% -> 4.00%)")
    log_event(ws, "rejected", f"{vids[2]} rejected: golden FAR 4.50% is not below 4.00% by 1%")
    log_event(ws, "training_failed", f"a notifier answered 401 for token {SECRET}")
    return ws


class Requests:
    """Passes every request to the app and keeps its path (to see the page's own refreshes)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def requests_seen(watched_ws: Path) -> Requests:
    return Requests(create_app(watched_ws))


@pytest.fixture(scope="module")
def server(requests_seen: Requests) -> Iterator[str]:
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(requests_seen, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + DEADLINE_S
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(timeout=DEADLINE_S)


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    proc = chromium(url, profile, *extra)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_snapshot_api_matches_the_registry_and_masks_secrets(server: str, watched_ws: Path) -> None:
    snap = httpx.get(f"{server}api/snapshot", timeout=DEADLINE_S).json()
    versions = ModelRegistry(watched_ws).versions()
    assert [v["version"] for v in snap["versions"]] == [v["version"] for v in versions]
    assert [v["status"] for v in snap["versions"]] == ["rejected", "champion", "archived"]
    assert snap["champion"]["version"] == versions[1]["version"]
    assert snap["champion"]["metrics"]["golden_far"] == pytest.approx(METRICS[1][0])
    assert [e["event"] for e in snap["events"]][-3:] == ["promoted", "rejected", "training_failed"]
    body = (
        httpx.get(server, timeout=DEADLINE_S).text + httpx.get(f"{server}fragment", timeout=DEADLINE_S).text
    )
    assert SECRET not in str(snap) and SECRET not in body
    assert "[REDACTED]" in snap["events"][-1]["message"]
    assert "alerts: telegram" in body


@pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed at /usr/bin/chromium")
def test_dashboard_renders_in_chromium_and_pauses_and_resumes(
    server: str, watched_ws: Path, tmp_path: Path
) -> None:
    shot = tmp_path / "dashboard.png"
    _chromium(server, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1200,1400")
    with Image.open(shot) as img:
        rgb = np.asarray(img.convert("RGB"))
    assert rgb.shape[:2] == (1400, 1200)
    colours = {tuple(c) for c in rgb[::3, ::3].reshape(-1, 3)}
    assert len(colours) > 100, f"only {len(colours)} colours: the page looks blank"
    for _, name, colour in SERIES:
        target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        near = np.abs(rgb.astype(int) - target).sum(axis=2) < 30
        assert near.sum() > 150, f"the {name} line ({colour}) is not on screen"

    versions = ModelRegistry(watched_ws).versions()
    dom = _chromium(server, tmp_path / "profile-dom", "--dump-dom").stdout
    assert dom.count('<tr class="version-row') == len(versions) == 3
    for v in versions:
        assert f'data-version="{v["version"]}"' in dom
    assert 'id="trend-chart"' in dom
    assert sum(f'class="series" data-series="{key}"' in dom for key, _, _ in SERIES) == 3
    assert 'id="watcher-state">paused<' not in dom

    flag = WatchLayout(watched_ws).paused_flag
    # another site's page cannot pause the watcher through the visitor's browser
    forged = httpx.post(f"{server}pause", headers={"Origin": "http://evil.example"}, timeout=DEADLINE_S)
    assert forged.status_code == 403 and not flag.exists()
    answer = httpx.post(
        f"{server}pause",
        data={"reason": "line 3 stopped for maintenance"},
        headers={"Origin": server.rstrip("/")},
        timeout=DEADLINE_S,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "./" and flag.is_file()
    assert "line 3 stopped for maintenance" in flag.read_text(encoding="utf-8")
    dom = _chromium(server, tmp_path / "profile-paused", "--dump-dom").stdout
    assert 'id="watcher-state">paused<' in dom and "line 3 stopped for maintenance" in dom
    assert 'id="resume"' in dom

    httpx.post(f"{server}resume", timeout=DEADLINE_S)
    assert not flag.exists()
    dom = _chromium(server, tmp_path / "profile-resumed", "--dump-dom").stdout
    assert 'id="watcher-state">paused<' not in dom and 'id="pause"' in dom


@pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed at /usr/bin/chromium")
def test_the_page_refreshes_itself(server: str, requests_seen: Requests, tmp_path: Path) -> None:
    before = requests_seen.paths.count("/fragment")
    # virtual time runs the page's timer for 10 s of page time without waiting for it
    dom = _chromium(server, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom").stdout
    assert requests_seen.paths.count("/fragment") > before
    assert '<span class="conn" id="conn">live</span>' in dom
    assert dom.count('id="live"') == 1 and 'id="trend-chart"' in dom


def test_the_cli_refuses_a_bad_notifier_url_and_a_missing_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".env").write_text("# alerts\nSPECLOOP_WEBHOOK_URL=hooks.example.com/T0/B1\n", encoding="utf-8")
    for args, sentence in (
        ([str(ws)], f"{ws / '.env'}:2: SPECLOOP_WEBHOOK_URL is not an http(s) URL"),
        ([str(tmp_path / "nope")], f"{tmp_path / 'nope'}: no such workspace directory"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "specloop", "dashboard", *args, "--port", str(_free_port())],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "hooks.example.com" not in proc.stderr
        assert sentence in " ".join(proc.stderr.split())


def test_a_workspace_never_watched_shows_an_empty_page_and_writes_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    with TestClient(create_app(ws)) as client:
        page = client.get("/").text
        snap = client.get("/api/snapshot").json()
    assert "No champion yet." in page and "No version registered yet." in page
    assert 'id="trend-empty"' in page and "alerts: none configured" in page
    assert snap["versions"] == [] and snap["champion"] is None and not snap["watcher"]["paused"]
    assert list(ws.iterdir()) == []
