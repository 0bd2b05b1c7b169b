"""Training on several devices: the same `specloop changenet train` command, under torchrun.

The DEFT loop trains in its own process when `train.num_gpus` is 1; above that it starts
`torchrun --standalone --nproc_per_node N` on the stage's spec file (gloo on a CPU, nccl on GPUs),
forwards the ranks' status lines, and reads rank 0's result file back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from specloop.errors import SpecloopError
from specloop.skills.changenet.train import TrainResult

RESULT_FILE = "train_result.json"


def torchrun_argv(nproc: int, *args: str) -> list[str]:
    """The torchrun command line for `specloop ARGS…` with `nproc` processes on this machine."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "specloop",
        *args,
    ]


def train_under_torchrun(spec_path: Path, out_dir: Path, nproc: int, *, progress: bool = True) -> TrainResult:
    """Train the spec file with `nproc` torchrun processes; the result rank 0 wrote.

    A failed launch or rank is one sentence: a rank's own one-sentence error (its `error:` line),
    else the last line torchrun printed, and the exit code."""
    result_path = out_dir / RESULT_FILE
    result_path.unlink(missing_ok=True)
    argv = torchrun_argv(
        nproc,
        "changenet",
        "train",
        "-e",
        str(spec_path),
        "-r",
        str(out_dir),
        "--result-json",
        str(result_path),
    )
    if not progress:
        argv.append("-q")
    threads = max(1, (os.cpu_count() or 1) // nproc)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    last = error = ""
    for line in proc.stderr or ():
        if line.strip():
            last = line.strip()
            error = last.removeprefix("error: ") if last.startswith("error: ") else error
        if progress:
            sys.stderr.write(line)
    code = proc.wait()
    if code != 0 or not result_path.is_file():
        raise SpecloopError(
            f"training under torchrun ({nproc} processes, {spec_path}) failed with exit code {code}: "
            f"{(error or last)[:300] or 'no output'}",
            rule="torchrun",
        )
    raw = json.loads(result_path.read_text(encoding="utf-8"))
    return TrainResult(**{**raw, "best_val": Path(raw["best_val"]), "latest": Path(raw["latest"])})
