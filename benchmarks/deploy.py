"""The deployed service's latency at batch 1 against the bare model's forward time, and the image size.

    python benchmarks/deploy.py [--project DIR] [--requests 300] [--base-image specloop-base:bookworm]

Without --project a digits project (image_classification / small_cnn) is rendered, given its mini
set and trained for one epoch in a temporary directory. The model's forward pass and the in-process
``Predictor.predict`` (decode + forward) are timed in this process; the service is deployed with
``specloop deploy`` (Docker when an engine answers, else a local process), measured at concurrency 1
on the version's own port and through the router, then taken down. Prints a Markdown table.
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

import numpy as np
import torch

from specloop.families import get_family
from specloop.skills.deploy import flow, smoke
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


def bare(project: Path, image: str, runs: int) -> dict[str, tuple[float, float]]:
    """p50/p95 ms of the model's forward pass and of Predictor.predict, batch 1, in this process."""
    target = load_target(project)
    sys.path.insert(0, str(project / "src"))
    infer = importlib.import_module(f"{target.package}.infer")
    data = importlib.import_module(f"{target.package}.data")
    predictor = infer.load(project / target.checkpoint)
    batch = data.to_batch([image], predictor.cfg, predictor.info)
    forward, predict = [], []
    with torch.inference_mode():
        for i in range(runs + 20):
            started = time.perf_counter()
            predictor.model(batch)
            took = (time.perf_counter() - started) * 1000
            if i >= 20:
                forward.append(took)
    for i in range(runs + 20):
        started = time.perf_counter()
        predictor.predict([image])
        took = (time.perf_counter() - started) * 1000
        if i >= 20:
            predict.append(took)
    return {"forward": _percentiles(forward), "predict": _percentiles(predict)}


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
        inproc = bare(project, image, args.requests)
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
            direct = smoke.load_test(
                f"http://127.0.0.1:{args.port + 1}", [image], requests=args.requests, concurrency=1
            )
            public = smoke.load_test(
                f"http://127.0.0.1:{args.port}", [image], requests=args.requests, concurrency=1
            )
        finally:
            flow.down(project)
    forward_p95 = inproc["forward"][1]
    rows = [
        ("model forward (in process)", *inproc["forward"]),
        ("Predictor.predict: decode + forward (in process)", *inproc["predict"]),
        ("service, its own port (HTTP + JSON + decode + forward)", direct.p50_ms, direct.p95_ms),
        ("service through the router (public port)", public.p50_ms, public.p95_ms),
    ]
    print(
        f"mode: {outcome.mode}; image {outcome.info.get('image')}: {outcome.info.get('image_size_mb')} MB, "
        f"{outcome.info.get('layers')} layers, build {outcome.info.get('build_seconds')} s"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{args.requests} requests each, batch 1, concurrency 1; load average {load} on {os.cpu_count()} CPUs\n"
    )
    print("| what | p50 ms | p95 ms | p95 over forward |")
    print("| --- | --- | --- | --- |")
    for name, p50, p95 in rows:
        print(f"| {name} | {p50} | {p95} | {'—' if p95 == forward_p95 else f'{p95 / forward_p95:.1f}×'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
