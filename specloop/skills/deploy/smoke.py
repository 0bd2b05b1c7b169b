"""Endpoint checks and a bounded smoke test against a running service on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from specloop.errors import SpecloopError

ENDPOINTS = (("GET", "/health"), ("GET", "/ready"), ("GET", "/docs"), ("GET", "/openapi.json"))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
LOADING = "model is loading"  # the generated service's /ready detail while it loads


@dataclass(frozen=True)
class Check:
    method: str
    path: str
    status: int | None
    ms: float
    ok: bool
    detail: str


@dataclass
class SmokeResult:
    requests: int
    concurrency: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    throughput_per_s: float
    error_rate: float
    predicted: dict[str, int] = field(default_factory=dict)
    mean_score: float | None = None
    resources: dict[str, float] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mini_samples(root: Path, limit: int = 50) -> list[tuple[str, str]]:
    """(class, base64 image) pairs from data/mini/val (or train), in a stable order across classes."""
    for split in ("val", "train"):
        base = root / "data" / "mini" / split
        if base.is_dir():
            files = sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if files:
                by_class: dict[str, list[Path]] = {}
                for p in files:
                    by_class.setdefault(p.parent.name, []).append(p)
                ordered = [p for group in zip(*by_class.values(), strict=False) for p in group][:limit]
                return [(p.parent.name, base64.b64encode(p.read_bytes()).decode()) for p in ordered]
    raise SpecloopError(
        f"{root / 'data' / 'mini'}: no sample images to send to /predict; run scripts/make_mini.py"
    )


def curl_command(base_url: str, sample_path: str) -> str:
    """The curl line a person can paste to call /predict with one mini-set image."""
    return (
        f'curl -s -X POST {base_url}/predict -H "Content-Type: application/json" '
        f'-d "{{\\"inputs\\": [\\"$(base64 -w0 {sample_path})\\"]}}"'
    )


def wait_ready(base_url: str, *, timeout_s: float = 120, alive: Callable[[], bool] | None = None) -> float:
    """Poll ``/ready`` until 200; seconds waited. ``alive`` says whether the service still runs."""
    started = time.monotonic()
    last = "no answer"
    with httpx.Client(timeout=5) as client:
        while time.monotonic() - started < timeout_s:
            if alive is not None and not alive():
                raise SpecloopError(
                    f"the service at {base_url} stopped before /ready answered ({last})", rule="ready"
                )
            try:
                r = client.get(f"{base_url}/ready")
                if r.status_code == 200:
                    return round(time.monotonic() - started, 2)
                last = f"{r.status_code} {r.text[:200]}"
                detail = r.json().get("detail") if "json" in r.headers.get("content-type", "") else None
                if r.status_code == 503 and detail and detail != LOADING:
                    raise SpecloopError(
                        f"{base_url}/ready says the model cannot load: {detail}", rule="ready"
                    )
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.3)
    raise SpecloopError(
        f"{base_url}/ready did not answer 200 within {timeout_s:g} s (last: {last})", rule="ready"
    )


def check_endpoints(base_url: str, sample: str) -> list[Check]:
    """GET /health, /ready, /docs, /openapi.json and POST /predict with one sample."""
    checks = []
    with httpx.Client(timeout=30) as client:
        for method, path in (*ENDPOINTS, ("POST", "/predict")):
            started = time.perf_counter()
            try:
                body = {"inputs": [sample]} if method == "POST" else None
                r = client.request(method, f"{base_url}{path}", json=body)
                ms = (time.perf_counter() - started) * 1000
                detail = (
                    r.text[:160]
                    if "json" in r.headers.get("content-type", "")
                    else r.headers.get("content-type", "")
                )
                ok = r.status_code == 200
                if path == "/predict" and ok:
                    prediction = r.json()["predictions"][0]
                    ok, detail = "label" in prediction, json.dumps(prediction)[:160]
                checks.append(Check(method, path, r.status_code, round(ms, 2), ok, detail))
            except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
                ms = (time.perf_counter() - started) * 1000
                checks.append(
                    Check(method, path, None, round(ms, 2), False, f"{type(exc).__name__}: {exc}"[:160])
                )
    return checks


def load_test(
    base_url: str,
    samples: list[str],
    *,
    requests: int = 200,
    concurrency: int = 4,
    sample_resources: Callable[[], dict[str, float]] | None = None,
) -> SmokeResult:
    """``requests`` POST /predict calls at ``concurrency``, one image each (batch 1), rotating samples.

    ``sample_resources`` is polled every half second while the test runs; the peaks are kept.
    """
    latencies: list[float] = []
    errors: list[str] = []
    predicted: Counter[str] = Counter()
    scores: list[float] = []
    lock = threading.Lock()
    local = threading.local()

    def one(i: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=30)
        started = time.perf_counter()
        try:
            r = client.post(f"{base_url}/predict", json={"inputs": [samples[i % len(samples)]]})
            ms = (time.perf_counter() - started) * 1000
            if r.status_code != 200:
                raise ValueError(f"status {r.status_code}: {r.text[:120]}")
            prediction = r.json()["predictions"][0]
            with lock:
                latencies.append(ms)
                predicted[str(prediction.get("label"))] += 1
                if "score" in prediction:
                    scores.append(float(prediction["score"]))
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

    peaks: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for key, value in sample_resources().items():  # type: ignore[misc]
                peaks[key] = max(peaks.get(key, 0.0), value)
            stop.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True) if sample_resources else None
    if watcher:
        watcher.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - started
    stop.set()
    if watcher:
        watcher.join()
    values = np.array(latencies) if latencies else np.array([float("nan")])
    p50, p95, p99 = (round(float(np.percentile(values, q)), 2) for q in (50, 95, 99))
    return SmokeResult(
        requests=requests,
        concurrency=concurrency,
        errors=len(errors),
        seconds=round(seconds, 3),
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        throughput_per_s=round(len(latencies) / seconds, 1),
        error_rate=round(len(errors) / requests, 4),
        predicted=dict(sorted(predicted.items())),
        mean_score=round(float(np.mean(scores)), 4) if scores else None,
        resources={k: round(v, 1) for k, v in peaks.items()},
        error_samples=errors[:5],
    )
