"""The DEFT loop end to end: per-stage times, wall time, KPI trajectory, and mined vs random rows.

Runs the loop headless (approved by flag) once per arm on the same workspace:

- `knn`: the product — rows mined as k-NN neighbours of the weak KPI samples;
- `random`: the control — at every iteration, exactly as many rows as k-NN kept, drawn uniformly at
  random from the same eligible pool rows (same exclusions), so the added-row budget is equal.

The pool is the unified source pool (real mining-pool rows and pre-generated synthetic pairs), so
each arm also reports the synthetic share of the rows it kept.

    .venv/bin/python benchmarks/deft_loop.py [--workspace WS | --size small] [--arms knn,random]
        [--max-iterations 3] [--json out.json]

Without --workspace the demo's workspace (small, seed 0) is synthesized in a temp dir and the
synthesis time is reported too. Run it on a quiet machine: every number here is wall time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from specloop.graph.run import create_run, drive
from specloop.ledger import loop_log
from specloop.ledger import state as ledger_state
from specloop.skills.aoi.synth import synthesize_workspace

console = Console()


def run_arm(ws: Path, arm: str, max_iterations: int) -> dict[str, Any]:
    options = {"max_iterations": max_iterations, "mining_strategy": arm, "progress": False, "llm": "offline"}
    start = time.perf_counter()
    run_dir = create_run(ws, options)
    outcome = drive(run_dir, yes=True, approver=None)
    wall = time.perf_counter() - start
    st = ledger_state.load(run_dir)
    log = loop_log.read_entries(run_dir / "loop_log.jsonl")
    iterations = {
        label: {
            "kpi_far": it.get("kpi_far"),
            "holdout_far": it.get("holdout_far"),
            "rows_added": sum((it.get("rows_added") or {}).values()),
            "kept_by_source": (it.get("mining") or {}).get("rows_by_source", {}),
            "chosen": it.get("chosen"),
        }
        for label, it in st["iterations"].items()
        if "kpi_far" in it
    }
    best = st.get("best") or {}
    return {
        "arm": arm,
        "run_dir": str(run_dir),
        "exit_code": outcome.exit_code,
        "wall_s": wall,
        "stage_seconds": [(e["iter"], e["stage"], e["duration_sec"]) for e in log],
        "iterations": iterations,
        "best_iter": best.get("iter"),
        "best_kpi_far": best.get("kpi_far"),
        "best_holdout_far": iterations.get(best.get("iter"), {}).get("holdout_far"),
    }


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def stage_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"Stage times, arm {result['arm']} (s)")
    labels = list(dict.fromkeys(i for i, _, _ in result["stage_seconds"]))
    by_stage: dict[str, dict[str, float]] = defaultdict(dict)
    for label, stage, secs in result["stage_seconds"]:
        by_stage[stage][label] = secs
    table.add_column("stage")
    for label in labels:
        table.add_column(label, justify="right")
    table.add_column("total", justify="right")
    for stage, per in by_stage.items():
        table.add_row(
            stage, *[f"{per[x]:.1f}" if x in per else "" for x in labels], f"{sum(per.values()):.1f}"
        )
    total = sum(s for _, _, s in result["stage_seconds"])
    table.add_row("all stages", *[""] * len(labels), f"{total:.1f}")
    return table


def trajectory_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="KPI trajectory: FAR@100% recall, KPI set / holdout (rows added, of them synthetic)")
    table.add_column("iteration")
    for r in results:
        table.add_column(r["arm"], justify="right")
    labels = list(dict.fromkeys(label for r in results for label in r["iterations"]))
    for label in labels:
        cells = []
        for r in results:
            it = r["iterations"].get(label)
            synthetic = it["kept_by_source"].get("synthetic", 0) if it else 0
            cells.append(
                f"{pct(it['kpi_far'])} / {pct(it['holdout_far'])} (+{it['rows_added']}, {synthetic} synthetic)"
                if it
                else ""
            )
        table.add_row(label, *cells)
    return table


def synthetic_share(result: dict[str, Any]) -> tuple[int, int]:
    """(synthetic rows kept, all rows kept) over the arm's iterations."""
    by_source = [it["kept_by_source"] for it in result["iterations"].values()]
    return sum(b.get("synthetic", 0) for b in by_source), sum(sum(b.values()) for b in by_source)


def ablation_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="Ablation at equal added-row budget")
    for col in (
        "arm",
        "rows added",
        "synthetic share of kept",
        "best iter",
        "best KPI FAR",
        "its holdout FAR",
        "last holdout FAR",
        "wall",
    ):
        table.add_column(col, justify="right")
    for r in results:
        last = list(r["iterations"].values())[-1]
        synthetic, kept = synthetic_share(r)
        table.add_row(
            r["arm"],
            str(sum(it["rows_added"] for it in r["iterations"].values())),
            f"{synthetic}/{kept} ({synthetic / kept:.0%})" if kept else "n/a",
            str(r["best_iter"]),
            pct(r["best_kpi_far"]),
            pct(r["best_holdout_far"]),
            pct(last["holdout_far"]),
            f"{r['wall_s']:.0f}s",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--size", default="small")
    parser.add_argument("--arms", default="knn,random")
    parser.add_argument("--max-iterations", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deft_bench_") as tmp:
        ws = args.workspace
        synth_s = None
        if ws is None:
            ws = Path(tmp) / "ws"
            start = time.perf_counter()
            synthesize_workspace(ws, size=args.size, seed=0, progress=False)
            synth_s = time.perf_counter() - start
            console.print(f"synthesized the {args.size} workspace in {synth_s:.1f}s")
        results = []
        for arm in args.arms.split(","):
            console.print(f"running arm {arm} …")
            results.append(run_arm(ws, arm, args.max_iterations))
            console.print(stage_table(results[-1]))
        console.print(trajectory_table(results))
        console.print(ablation_table(results))
        if synth_s is not None:
            console.print(
                f"synthesis {synth_s:.1f}s; loop wall per arm: "
                + ", ".join(f"{r['arm']} {r['wall_s']:.0f}s" for r in results)
            )
        if args.json:
            args.json.write_text(json.dumps({"synthesis_s": synth_s, "arms": results}, indent=2))


if __name__ == "__main__":
    main()
