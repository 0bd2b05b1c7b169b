"""CLI start-up benchmark: `specloop --help` against the floor set by its own libraries.

    .venv/bin/python benchmarks/cli_startup.py [--repeat 15] [--out FILE.md]

Each row runs a fresh interpreter (the installed `specloop` entry point, or `python -c ...`) --repeat
times, interleaved so that a slow moment of the machine hits every row alike, and reports the
median and fastest wall time. The floor is `python -c "import typer, rich"`: `specloop --help`
cannot start faster than the libraries it draws its help with. The target is within 3× of it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
FLOOR = "python -c 'import typer, rich'"
ROWS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    FLOOR: [sys.executable, "-c", "import typer, rich"],
    "specloop --help": [str(BIN / "specloop"), "--help"],
    "specloop deft run --help": [str(BIN / "specloop"), "deft", "run", "--help"],
    "specloop audit --help": [str(BIN / "specloop"), "audit", "--help"],
}


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def measure(repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in ROWS}
    for cmd in ROWS.values():  # one warm-up each: the first start reads the files from disk
        wall(cmd)
    for _ in range(repeat):
        for name, cmd in ROWS.items():
            times[name].append(wall(cmd))
    return times


def table(times: dict[str, list[float]]) -> str:
    floor = statistics.median(times[FLOOR])
    lines = [
        "| command | median (ms) | fastest (ms) | × the floor |",
        "|---|---:|---:|---:|",
    ]
    for name, ts in times.items():
        med = statistics.median(ts)
        lines.append(f"| `{name}` | {med * 1000:.0f} | {min(ts) * 1000:.0f} | {med / floor:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None, help="Also write the table here.")
    args = parser.parse_args()
    text = table(measure(args.repeat)) + f"\n\n{args.repeat} runs each, interleaved, after one warm-up.\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
