"""One training job in a child process, watched: a NaN/Inf loss stops it, a crash is restarted.

The child is `specloop changenet train` (the DEFT loop's own training skill behind its CLI). Its
per-epoch `status.json` is polled; the first non-finite loss kills the child. A crash (non-zero exit)
is restarted from its `latest.pth` up to `restarts` times. A child that stops itself on non-finite
validation scores diverged too: it is not restarted. The child's output goes to `train.out`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from specloop.skills.registry.quality import non_finite_epoch

POLL_S = 0.5
# The changenet KPI's refusal of non-finite scores (kpi._check): a validation pass met a NaN/Inf.
NON_FINITE_SCORES = "NaN or infinite"


@dataclass
class TrainOutcome:
    status: str  # "ok", "diverged" (NaN/Inf loss, stopped), "crashed" (restarts used up)
    out_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    seconds: float = 0.0
    detail: str = ""

    @property
    def best(self) -> Path:
        return self.out_dir / "best_val.pth"


def write_spec(base_spec: Path, out: Path, overrides: dict[str, Any]) -> Path:
    conf = OmegaConf.load(base_spec)
    for key, value in overrides.items():
        OmegaConf.update(conf, key, value, force_add=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(conf, out)
    return out


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the watcher dies, so a killed watcher leaves no orphan training."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _history(out_dir: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads((out_dir / "status.json").read_text())["history"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return []


def run_training(
    spec_path: Path, out_dir: Path, *, restarts: int = 3, env: dict[str, str] | None = None
) -> TrainOutcome:
    """Train `spec_path` into `out_dir`; see the module docstring for what stops and restarts it."""
    t0 = time.perf_counter()
    attempts = 0
    log = out_dir / "train.out"
    out_dir.mkdir(parents=True, exist_ok=True)
    while True:
        attempts += 1
        argv = [
            sys.executable,
            "-m",
            "specloop",
            "changenet",
            "train",
            "-e",
            str(spec_path),
            "-r",
            str(out_dir),
            "-q",
        ]
        if (out_dir / "latest.pth").is_file():
            argv.append(f"train.resume_training_checkpoint_path={out_dir / 'latest.pth'}")
        with log.open("a") as fh:
            proc = subprocess.Popen(
                argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
            )
            while proc.poll() is None:
                bad = non_finite_epoch(_history(out_dir))
                if bad is not None:
                    proc.kill()
                    proc.wait()
                    return TrainOutcome(
                        "diverged",
                        out_dir,
                        _history(out_dir),
                        attempts,
                        time.perf_counter() - t0,
                        f"non-finite loss at epoch {bad}; training stopped",
                    )
                time.sleep(POLL_S)
        history = _history(out_dir)
        bad = non_finite_epoch(history)
        if bad is not None:
            return TrainOutcome(
                "diverged",
                out_dir,
                history,
                attempts,
                time.perf_counter() - t0,
                f"non-finite loss at epoch {bad}; training stopped",
            )
        if proc.returncode == 0 and (out_dir / "best_val.pth").is_file():
            return TrainOutcome("ok", out_dir, history, attempts, time.perf_counter() - t0)
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        if NON_FINITE_SCORES in tail[0]:
            return TrainOutcome(
                "diverged",
                out_dir,
                history,
                attempts,
                time.perf_counter() - t0,
                f"non-finite validation scores (NaN/Inf loss) in epoch {len(history) + 1}; training stopped",
            )
        if attempts > restarts:
            return TrainOutcome(
                "crashed",
                out_dir,
                history,
                attempts,
                time.perf_counter() - t0,
                f"training exited {proc.returncode} {attempts} time(s); last line: {tail[0][:200]}",
            )
