"""`specloop create` per task family: seconds per stage, the total with and without the target
venv's package install (part B's env_check), and tech.md's predicted one-epoch time against the
measured one (the T04 task's `train_seconds`).

    python benchmarks/create.py [--families image_classification,tabular] [--out DIR [--reuse]]

Torch-only families install this machine's CPU torch wheel into the target venv (a pip constraint,
as the tests do). Prints one table; paste it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from specloop.families import get_family, list_families
from specloop.ledger import loop_log
from specloop.pipelines import get_pipeline

REQUESTS = {
    "image_classification": "帮我做一个手写数字识别的小模型，能在笔记本CPU上跑就行。",
    "tabular": "Predict the wine cultivar from the chemical analysis in our CSV table; it must answer within 100 ms.",
    "text_classification": "对电商评论做情感分类，正面和负面",
    "timeseries": "Forecast hourly sensor readings for the next 24 hours from our time series.",
    "aoi_change_detection": "PCB AOI false alarms are too high; classify solder defects against golden images.",
}
CREATE = get_pipeline("create")
STAGES = [s for scope in CREATE.scope_order for s in CREATE.order(scope)]


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
    env = dict(os.environ)
    fam = get_family(family)
    if not any(r.startswith("torchvision") for r in (*fam.requirements, *fam.candidates[0].requirements)):
        (root / "cpu-torch.txt").write_text("torch==2.13.0\n", encoding="utf-8")
        env["PIP_CONSTRAINT"] = str(root / "cpu-torch.txt")
    proc = subprocess.run(
        argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{family}: specloop create exited {proc.returncode}: {proc.stderr[-800:]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(f.name for f in list_families()))
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="tabulate the runs already kept in --out")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="specloop-bench-create-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for family in args.families.split(","):
        kept = root / family
        out = kept if args.reuse and (kept / "loop_log.jsonl").is_file() else _create(family, root)
        seconds = {e["stage"]: e["duration_sec"] for e in loop_log.read_entries(out / "loop_log.jsonl")}
        wall = sum(seconds.values())
        state = json.loads((out / "create_state.json").read_text())
        project = out / state["project_dir"]
        tech = json.loads((out / "tech.json").read_text())
        history = json.loads((project / "outputs" / "metrics.json").read_text())["history"]
        measured = history[0]["train_seconds"]  # T04's one epoch on the mini set
        rows.append((family, tech["chosen"], seconds, wall, tech["predicted_epoch_seconds"], measured))
    load = os.getloadavg()[0]
    print(f"specloop create on {os.cpu_count()} CPUs, load average {load:.1f} at the end; seconds\n")
    head = ["family", "candidate", *STAGES, "total", "total without venv install"]
    head += ["epoch predicted", "epoch measured", "measured/predicted"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for family, chosen, secs, wall, predicted, measured in rows:
        ratio = f"{measured / predicted:.2f}" if measured and predicted else "n/a"
        cells = [family, chosen, *[f"{secs.get(s, 0):.0f}" for s in STAGES], f"{wall:.0f}"]
        cells += [f"{wall - secs.get('env_check', 0):.0f}", f"{predicted:.2f}"]
        cells += [f"{measured:.2f}" if measured else "n/a", ratio]
        print("| " + " | ".join(cells) + " |")
    print(f"\nruns kept in {root}")


if __name__ == "__main__":
    main()
