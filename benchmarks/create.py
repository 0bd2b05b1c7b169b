"""`specloop create` per task family: seconds per stage and in total, and tech.md's predicted
one-epoch time against the measured one (the T04 task's `train_seconds`).

    python benchmarks/create.py [--families image_classification,tabular] [--venv] [--out DIR]

`--venv` also times a fresh venv made from each project's requirements-cpu.txt (reported apart:
it is the package install, not the flow). Prints one table; paste it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from specloop.families import list_families
from specloop.ledger import loop_log
from specloop.pipelines import get_pipeline

REQUESTS = {
    "image_classification": "帮我做一个手写数字识别的小模型，能在笔记本CPU上跑就行。",
    "tabular": "Predict the wine cultivar from the chemical analysis in our CSV table; it must answer within 100 ms.",
    "text_classification": "对电商评论做情感分类，正面和负面",
    "timeseries": "Forecast hourly sensor readings for the next 24 hours from our time series.",
    "aoi_change_detection": "PCB AOI false alarms are too high; classify solder defects against golden images.",
}
STAGES = get_pipeline("create").order("framework")


def _create(family: str, root: Path) -> Path:
    out = root / family
    argv = [
        sys.executable,
        "-m",
        "specloop",
        "create",
        REQUESTS[family],
        "--out",
        str(out),
        "--yes",
        "--no-progress",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{family}: specloop create exited {proc.returncode}: {proc.stderr[-800:]}")
    return out


def _venv_seconds(project: Path, root: Path) -> float:
    venv = root / f"venv-{project.name}"
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    argv = [str(venv / "bin" / "pip"), "install", "-q", "-r", str(project / "requirements-cpu.txt")]
    if "torchvision" not in (project / "requirements-cpu.txt").read_text(encoding="utf-8"):
        (root / "cpu-torch.txt").write_text("torch==2.13.0\n", encoding="utf-8")
        argv += ["-c", str(root / "cpu-torch.txt")]
    subprocess.run(argv, check=True, capture_output=True)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(f.name for f in list_families()))
    parser.add_argument("--venv", action="store_true", help="also time a fresh venv per project")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="specloop-bench-create-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for family in args.families.split(","):
        start = time.monotonic()
        out = _create(family, root)
        wall = time.monotonic() - start
        seconds = {e["stage"]: e["duration_sec"] for e in loop_log.read_entries(out / "loop_log.jsonl")}
        state = json.loads((out / "create_state.json").read_text())
        project = out / state["project_dir"]
        tech = json.loads((out / "tech.json").read_text())
        measured = json.loads((project / "outputs" / "metrics.json").read_text()).get("train_seconds")
        venv = _venv_seconds(project, root) if args.venv else None
        rows.append((family, tech["chosen"], seconds, wall, tech["predicted_epoch_seconds"], measured, venv))
    load = os.getloadavg()[0]
    print(f"specloop create on {os.cpu_count()} CPUs, load average {load:.1f} at the end; seconds\n")
    head = [
        "family",
        "candidate",
        *STAGES,
        "total (wall)",
        "epoch predicted",
        "epoch measured",
        "ratio",
        "venv",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for family, chosen, secs, wall, predicted, measured, venv in rows:
        ratio = f"{measured / predicted:.2f}" if measured and predicted else "n/a"
        cells = [family, chosen, *[f"{secs.get(s, 0):.0f}" for s in STAGES], f"{wall:.0f}"]
        cells += [f"{predicted:.2f}", f"{measured:.2f}" if measured else "n/a", ratio]
        cells.append(f"{venv:.0f}" if venv is not None else "not timed")
        print("| " + " | ".join(cells) + " |")
    print(f"\nruns kept in {root}")


if __name__ == "__main__":
    main()
