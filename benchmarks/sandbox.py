"""Sandbox overhead: the time to run a trivial command bare and in each sandbox.

    .venv/bin/python benchmarks/sandbox.py [--repeats 10] [--image specloop-base:bookworm] [--torch]

Rows: ``/usr/bin/python3 -c pass`` run bare (``subprocess.run``), in the local sandbox with each
memory enforcer (cgroup-v1 where this runs as root, PSS polling), and in the Docker sandbox
(``--network none``) when an engine answers and the image exists; with ``--torch``, also
``import torch`` with the project's interpreter, bare and local, to show what polling costs a
large process. Prints a Markdown table of median and best wall seconds (the record's ``seconds``
for sandboxed runs, so the supervisor's own start-up is included and the record's bookkeeping is not).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from specloop.errors import SpecloopError
from specloop.sandbox import available, run
from specloop.sandbox.local import run_local
from specloop.sandbox.memory import MemoryCgroup

PASS = ["/usr/bin/python3", "-c", "pass"]
TORCH = [sys.executable, "-c", "import torch"]


def bare(argv: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True)
    return time.monotonic() - start


def interleaved(
    cases: list[tuple[str, str, Callable[[], float]]], repeats: int
) -> list[tuple[str, str, float, float]]:
    """Median and best seconds per case, the cases taken in turn each round so that load from other
    work on the machine falls on all of them alike; one warm-up round is not counted."""
    times: list[list[float]] = [[] for _ in cases]
    for round_ in range(repeats + 1):
        for i, (_, _, fn) in enumerate(cases):
            seconds = fn()
            if round_:
                times[i].append(seconds)
    return [
        (what, where, statistics.median(t), min(t)) for (what, where, _), t in zip(cases, times, strict=True)
    ]


def rows(repeats: int, image: str, with_torch: bool, cwd: Path) -> list[tuple[str, str, float, float]]:
    def local(argv: list[str], memory_by: str) -> Callable[[], float]:
        def go() -> float:
            rec = run_local(argv, cwd=cwd, memory_mb=4096, memory_by=memory_by)
            assert rec.ok, rec.stderr_tail
            return rec.seconds

        return go

    def docker() -> float:
        rec = run(PASS, cwd=cwd, kind="docker", image=image, memory_mb=512)
        assert rec.ok, rec.stderr_tail
        return rec.seconds

    enforcers = ["cgroup-v1", "pss-poll"] if MemoryCgroup.usable() else ["pss-poll"]
    cases: list[tuple[str, str, Callable[[], float]]] = [("python -c pass", "bare", lambda: bare(PASS))]
    cases += [("python -c pass", f"local, memory by {m}", local(PASS, m)) for m in enforcers]
    try:
        run(["true"], cwd=cwd, kind="docker", image=image)
        cases.append(("python -c pass", f"docker:{image}", docker))
    except SpecloopError as exc:
        print(f"docker row left out: {exc}", file=sys.stderr)
    table = interleaved(cases, repeats)
    if with_torch:
        torch_cases = [("import torch", "bare", lambda: bare(TORCH))]
        torch_cases += [("import torch", f"local, memory by {m}", local(TORCH, m)) for m in enforcers]
        table += interleaved(torch_cases, max(1, repeats // 2))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--image", default="specloop-base:bookworm")
    parser.add_argument("--torch", action="store_true")
    args = parser.parse_args()
    for kind, state in available().items():
        print(f"- {kind}: {state}")
    with tempfile.TemporaryDirectory() as tmp:
        table = rows(args.repeats, args.image, args.torch, Path(tmp))
    base = {what: med for what, where, med, _ in table if where == "bare"}
    print("\n| command | where | median s | best s | median overhead s |")
    print("|---|---|---:|---:|---:|")
    for what, where, med, best in table:
        print(f"| `{what}` | {where} | {med:.3f} | {best:.3f} | {med - base[what]:+.3f} |")


if __name__ == "__main__":
    main()
