"""Measure a candidate model on this machine with the generated project's own benchmark.

The candidate is rendered into a scratch project and its ``scripts/benchmark.py`` runs in a
subprocess: the numbers come from the code the user will get, not from a copy of it. Everything
derived from them (full-training time, GPU memory and time) is labelled ``extrapolated`` or
``assumed`` and carries its formula, so tech.md never states a number without its provenance.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from specloop.errors import SpecloopError
from specloop.families.base import Candidate, Family
from specloop.skills.scaffold.codegen import project_answers, read_answers, render_project

# argv, cwd, timeout → exit code, stdout, stderr, seconds
Runner = Callable[[list[str], Path, float], tuple[int, str, str, float]]

BYTES_PER_PARAM = 4 * 4  # fp32 weights + gradients + AdamW's two moments
TRAIN_STATE_BYTES_PER_PARAM = 4 * 3  # what the measured training steps allocate beyond the weights

# No GPU here: its speed is an assumption, stated as one. Override with a measured value when known.
GPU_ASSUMPTION: dict[str, Any] = {
    "hardware": "NVIDIA A100 80GB",
    "speedup": 20.0,
    "cuda_context_mb": 500.0,
    "label": "assumed",
    "basis": (
        "assumed ×20 training throughput over this machine's CPU for the small fp32 models here (small "
        "models leave a GPU mostly idle, large ones gain more), plus an assumed 500 MB CUDA context; "
        "not measured — replace with a measured benchmark on the target GPU"
    ),
}

_KEYS = (
    "params",
    "trainable_params",
    "peak_rss_mb",
    "train_samples_per_sec",
    "latency_ms_b1",
    "batch_size",
    "steps",
    "device",
    "torch",
)


@dataclass
class Measurement:
    """What one benchmark run measured, and how it was run."""

    family: str
    candidate: str
    params: int
    trainable_params: int
    peak_rss_mb: float
    train_samples_per_sec: float
    latency_ms_b1: float
    batch_size: int
    steps: int
    device: str
    torch_version: str
    command: list[str]
    exit_code: int
    seconds: float
    output_sha256: str
    input_shape: list[int]
    warmup_steps: int = 0
    warmup_seconds: float = 0.0
    train_rss_delta_mb: float = 0.0
    threads: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def subprocess_runner(argv: list[str], cwd: Path, timeout_s: float) -> tuple[int, str, str, float]:
    """Run ``argv`` in ``cwd``; a timeout is exit code 124 with a note on stderr."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return 124, out, f"{err}\ntimed out after {timeout_s:g} s", time.perf_counter() - started
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - started


def render_candidate(family: Family, candidate: Candidate, scratch_dir: Path) -> Path:
    """The candidate's project under ``scratch_dir``, rendered once and reused while its answers hold."""
    project = Path(scratch_dir) / f"{family.name}-{candidate.name}"
    tag = hashlib.sha256(f"{family.name}/{candidate.name}".encode()).hexdigest()[:10]
    answers = project_answers(family, candidate, project_name=f"bench-{tag}")
    if project.exists() and any(project.iterdir()):
        if read_answers(project) != answers:
            raise SpecloopError(f"{project} holds another rendering; remove it or use another scratch dir")
        return project
    render_project(answers, project)
    return project


def measure_candidate(
    family: Family,
    candidate: Candidate,
    *,
    scratch_dir: Path,
    batch_size: int,
    steps: int = 5,
    python: str = sys.executable,
    timeout_s: float = 300,
    runner: Runner | None = None,
) -> Measurement:
    """Run the rendered project's ``scripts/benchmark.py`` for ``candidate`` and parse its JSON line."""
    project = render_candidate(family, candidate, scratch_dir)
    argv = [
        python,
        "scripts/benchmark.py",
        "--config",
        "configs/default.yaml",
        "--batch-size",
        str(batch_size),
        "--steps",
        str(steps),
        "--device",
        "cpu",
    ]
    code, stdout, stderr, seconds = (runner or subprocess_runner)(argv, project, timeout_s)
    if code != 0:
        last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "no output on stderr")
        raise SpecloopError(
            f"benchmark of {family.name}/{candidate.name} failed (exit {code}): {last.strip()}"
        )
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1])
        missing = [k for k in _KEYS if k not in result]
    except (IndexError, json.JSONDecodeError):
        missing, result = ["a JSON line"], {}
    if missing:
        raise SpecloopError(
            f"benchmark of {family.name}/{candidate.name} printed no result with {', '.join(missing)}"
        )
    return Measurement(
        family=family.name,
        candidate=candidate.name,
        params=int(result["params"]),
        trainable_params=int(result["trainable_params"]),
        peak_rss_mb=float(result["peak_rss_mb"]),
        train_samples_per_sec=float(result["train_samples_per_sec"]),
        latency_ms_b1=float(result["latency_ms_b1"]),
        batch_size=int(result["batch_size"]),
        steps=int(result["steps"]),
        device=str(result["device"]),
        torch_version=str(result["torch"]),
        command=argv,
        exit_code=code,
        seconds=round(seconds, 3),
        output_sha256=hashlib.sha256(stdout.encode()).hexdigest(),
        input_shape=[int(v) for v in result.get("input_shape", [])],
        warmup_steps=int(result.get("warmup_steps", 0)),
        warmup_seconds=float(result.get("warmup_seconds", 0.0)),
        train_rss_delta_mb=float(result.get("train_rss_delta_mb", 0.0)),
        threads=int(result.get("threads", 0)),
    )


def _warmup_extra_seconds(m: Measurement) -> float:
    """How much longer the first steps of a process took than steady-state steps."""
    return max(0.0, m.warmup_seconds - m.warmup_steps * m.batch_size / m.train_samples_per_sec)


def predict_epoch_seconds(m: Measurement, samples: int) -> float:
    """The train loop of a first epoch over ``samples`` (``train_seconds`` in metrics.json).

    ``samples / train_samples_per_sec`` plus the measured warm-up excess of a fresh process.
    """
    return _warmup_extra_seconds(m) + samples / m.train_samples_per_sec


def extrapolate(
    m: Measurement, *, samples: int, epochs: int, gpu: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Full-training time on this CPU, GPU memory and GPU time, each labelled with its formula."""
    gpu = gpu or GPU_ASSUMPTION
    sps = m.train_samples_per_sec
    cpu_seconds = samples * epochs / sps
    static_mb = m.params * BYTES_PER_PARAM / 2**20
    activations_mb = max(0.0, m.train_rss_delta_mb - m.params * TRAIN_STATE_BYTES_PER_PARAM / 2**20)
    gpu_mb = static_mb + activations_mb + gpu["cuda_context_mb"]
    where = f"this machine ({m.threads} CPU threads, torch {m.torch_version})"
    return {
        "params": {
            "value": m.params,
            "label": "measured",
            "formula": "sum of p.numel() over the built model",
        },
        "train_samples_per_sec": {
            "value": sps,
            "label": "measured",
            "formula": f"batch {m.batch_size} × {m.steps} steps / their wall time, after {m.warmup_steps} warm-up steps",
            "hardware": where,
        },
        "latency_ms_b1": {
            "value": m.latency_ms_b1,
            "label": "measured",
            "formula": "median of 10 forward passes at batch 1",
            "hardware": where,
        },
        "peak_rss_mb": {"value": m.peak_rss_mb, "label": "measured", "formula": "ru_maxrss of the benchmark"},
        "cpu_train_seconds": {
            "value": round(cpu_seconds, 1),
            "label": "extrapolated",
            "formula": f"samples × epochs / train_samples_per_sec = {samples} × {epochs} / {sps:g}",
            "hardware": where,
        },
        "gpu_memory_mb": {
            "value": round(gpu_mb, 1),
            "label": "extrapolated",
            "formula": (
                f"params × 16 B (fp32 weights, grads, 2 AdamW moments) = {static_mb:.1f} MB + activations "
                f"(measured RSS growth over training {m.train_rss_delta_mb:g} MB − params × 12 B, at batch "
                f"{m.batch_size}) = {activations_mb:.1f} MB + CUDA context {gpu['cuda_context_mb']:g} MB "
                f"({gpu['label']})"
            ),
            "hardware": gpu["hardware"],
        },
        "gpu_train_seconds": {
            "value": round(cpu_seconds / gpu["speedup"], 1),
            "label": "extrapolated",
            "formula": f"cpu_train_seconds / speed-up = {cpu_seconds:.1f} / {gpu['speedup']:g}",
            "hardware": gpu["hardware"],
            "assumption": {"label": gpu["label"], "speedup": gpu["speedup"], "basis": gpu["basis"]},
        },
    }
