"""The deployed service's latency at batch 1 against the bare model's forward time, and the image size.

    python benchmarks/deploy.py [--project DIR] [--requests 300] [--base-image specloop-base:bookworm]

Without --project a digits project (image_classification / small_cnn) is rendered, given its mini
set and trained for one epoch in a temporary directory. The model's forward pass and the in-process
``Predictor.predict`` (decode + forward) are timed in this process, interleaved call by call with
POST /predict on the deployed version's own port and through the router (deployed with the
``specloop deploy`` flow: Docker when an engine answers, else local processes; taken down after).
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

from specloop.families import get_family
from specloop.skills.deploy import flow
from specloop.skills.deploy.target import load_target
from specloop.skills.scaffold.codegen import project_answers, render_project


def _make_project(root: Path) -> Path:
    family = get_family("image_classification")
    project = root / "digits"
    render_project(project_answers(family, family.candidates[0], project_name="digits"), project)
    for argv in (
        ["scripts/make_mini.py", "--out", "data/mini"],
        ["scripts/train.py", "--data", "data/mini", "--epochs", "1"],
    ):
        subprocess.run([sys.executable, *argv], cwd=project, check=True, capture_output=True)
    return project


def _percentiles(ms: list[float]) -> tuple[float, float]:
    return round(float(np.percentile(ms, 50)), 3), round(float(np.percentile(ms, 95)), 3)


def measure(project: Path, image: str, ports: dict[str, int], runs: int) -> dict[str, list[float]]:
    """ms per call, batch 1, the four cases interleaved call by call so they share the machine's load:
    the model's forward, ``Predictor.predict`` in this process, and POST /predict on each port."""
    target = load_target(project)
    sys.path.insert(0, str(project / "src"))
    infer = importlib.import_module(f"{target.package}.infer")
    data = importlib.import_module(f"{target.package}.data")
    predictor = infer.load(project / target.checkpoint)
    batch = data.to_batch([image], predictor.cfg, predictor.info)
    clients = {
        name: httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) for name, port in ports.items()
    }
    cases = {
        "forward": lambda: predictor.model(batch),
        "predict": lambda: predictor.predict([image]),
        **{
            name: (lambda c=c: c.post("/predict", json={"inputs": [image]}).raise_for_status())
            for name, c in clients.items()
        },
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    with torch.inference_mode():
        for i in range(runs + 20):
            for name, call in cases.items():
                started = time.perf_counter()
                call()
                if i >= 20:  # warm-up apart
                    times[name].append((time.perf_counter() - started) * 1000)
    for c in clients.values():
        c.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--port", type=int, default=18500)
    parser.add_argument("--base-image", default="specloop-base:bookworm")
    parser.add_argument("--wheelhouse", type=Path, default=Path("/opt/wheels"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="specloop-bench-deploy-") as tmp:
        project = args.project or _make_project(Path(tmp))
        image = base64.b64encode(next((project / "data/mini/val").rglob("*.png")).read_bytes()).decode()
        options = flow.Options(
            port=args.port,
            base_image=args.base_image,
            requests=50,
            concurrency=1,
            wheelhouse=args.wheelhouse if args.wheelhouse.is_dir() else None,
            ca_bundle=Path("/etc/ssl/certs/ca-certificates.crt"),
        )
        outcome = flow.deploy(project, options, say=lambda line: print(line, file=sys.stderr))
        try:
            times = measure(project, image, {"direct": args.port + 1, "public": args.port}, args.requests)
        finally:
            flow.down(project)
    names = {
        "forward": "model forward (in process)",
        "predict": "Predictor.predict: decode + forward (in process)",
        "direct": "service on its own port (HTTP + JSON + decode + forward)",
        "public": "service through the router (public port)",
    }
    forward_p95 = _percentiles(times["forward"])[1]
    rows = [(names[k], *_percentiles(v)) for k, v in times.items()]
    print(
        f"mode: {outcome.mode}; image {outcome.info.get('image')}: {outcome.info.get('image_size_mb')} MB, "
        f"{outcome.info.get('layers')} layers, build {outcome.info.get('build_seconds')} s"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{args.requests} calls each, batch 1, one at a time, cases interleaved; load average {load} "
        f"on {os.cpu_count()} CPUs\n"
    )
    print("| what | p50 ms | p95 ms | p95 over forward |")
    print("| --- | --- | --- | --- |")
    for name, p50, p95 in rows:
        print(f"| {name} | {p50} | {p95} | {'—' if p95 == forward_p95 else f'{p95 / forward_p95:.1f}×'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
