"""Audit benchmark: `specloop audit` on synthetic DEFT run directories of growing length.

    .venv/bin/python benchmarks/audit.py [--iterations 1 10 30] [--kpi-rows 400] [--ckpt-mb 8]
                                         [--checkpoint PTH] [--repeat 3] [--out FILE.md]

Each run directory is built the way the loop builds one, with the loop's own skills doing the
work: `changenet.evaluate` writes the metrics, `rca.analyze_gaps` the RCA files, `aoi.assemble`
the training sets and their provenance, `report.iteration_summary` the summaries, and the
transcript is hash-chained with the ledger's `entry_hash`. Only the scores (seeded random, the
FAR falling as iterations go) and the checkpoints (random bytes of --ckpt-mb) are made up. Every
run must audit clean; the table gives the audit's wall time (median of --repeat), what hashing the
kept checkpoints costs on its own (it is part of the audit), and, once, the import cost and the
whole `specloop audit` command.
--checkpoint times one real checkpoint's sha256 (a 136 MB ChangeNet file costs that once per kept
checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specloop.ledger.files import atomic_write_json, sha256_file
from specloop.ledger.transcript import GENESIS, entry_hash
from specloop.skills.aoi.assemble import assemble
from specloop.skills.aoi.pool import to_workspace_paths
from specloop.skills.aoi.schema import COLUMNS, write_csv
from specloop.skills.audit import audit_run
from specloop.skills.audit.integrity import BASELINE_STAGES as BASELINE
from specloop.skills.audit.integrity import ITERATION_STAGES as ITERATION
from specloop.skills.changenet.evaluate import evaluate
from specloop.skills.rca.gaps import analyze_gaps
from specloop.skills.report import iteration_summary

DEFECTS = ("bridge", "missing", "polarity", "scratch", "shift", "tombstone")
FAR_TARGET = 0.01
TOP_K = 5


def rows(prefix: str, n: int, rng: np.random.Generator, defect_share: float = 0.3) -> pd.DataFrame:
    labels = np.where(rng.random(n) < defect_share, rng.choice(DEFECTS, n), "PASS")
    df = pd.DataFrame(
        {
            "input_path": [f"{prefix}_{i:05d}/test" for i in range(n)],
            "golden_path": [f"{prefix}_{i:05d}/golden" for i in range(n)],
            "label": labels,
            "object_name": [f"C{i % 97}" for i in range(n)],
            "boardname": [f"board{i % 7}" for i in range(n)],
        }
    )
    for col in COLUMNS:
        if col not in df:
            df[col] = ""
    return df[list(COLUMNS)]


def build_workspace(ws: Path, kpi_rows: int, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    splits = {
        "training": (ws / "train/base/training_set.csv", rows("train", 600, rng)),
        "validation": (ws / "train/base/validation_set.csv", rows("val", 160, rng)),
        "kpi": (ws / "kpi/testing_set.csv", rows("kpi", kpi_rows, rng)),
        "holdout": (ws / "kpi/holdout_set.csv", rows("hold", kpi_rows, rng)),
        "mining_pool": (ws / "augmentation/mining_pool/mining_pool.csv", rows("pool", 4000, rng)),
    }
    for path, df in splits.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(df, path)
    for side in ("reconstructed_image", "original_image"):
        d = ws / "augmentation/anomalygen" / side
        d.mkdir(parents=True, exist_ok=True)
        for i in range(40):
            (d / f"synth_{i:03d}_SolderLight.png").write_bytes(rng.bytes(2048))
    return {name: df for name, (_, df) in splits.items()}


def scored(df: pd.DataFrame, quality: float, rng: np.random.Generator) -> pd.DataFrame:
    """Defect scores: defects high, PASS low, overlapping less as `quality` grows."""
    out = df.copy()
    defect = (out["label"] != "PASS").to_numpy()
    base = np.where(defect, 0.55 + 0.1 * quality, 0.45 - 0.1 * quality)
    out["siamese_score"] = np.clip(base + rng.normal(0, 0.12, len(out)), 0, 1)
    return out


class Ledger:
    """The run's log and transcript, written the way the ledger writes them."""

    def __init__(self, run: Path) -> None:
        self.run = run
        self.log: list[dict[str, Any]] = []
        self.transcript: list[dict[str, Any]] = []

    def entry(self, agent: str, kind: str, label: str, stage: str, **data: Any) -> None:
        prev = self.transcript[-1]["hash"] if self.transcript else GENESIS
        e = {
            "n": len(self.transcript) + 1,
            "ts": "2026-01-01T00:00:00.000+00:00",
            "agent": agent,
            "kind": kind,
        }
        e |= {"iter": label, "stage": stage, "data": data, "prev_hash": prev}
        e["hash"] = entry_hash(e)
        self.transcript.append(e)

    def stage(self, label: str, stage: str, summary: str, ws: Path) -> None:
        self.entry("reviewer", "stage_start", label, stage)
        args = {
            "csv": f"PosixPath('{ws}/kpi/testing_set.csv')",
            "out_dir": f"PosixPath('{self.run}/{label}')",
        }
        self.entry("reviewer", "tool_call", label, stage, tool=f"skill.{stage}", args=args)
        self.entry("reviewer", "tool_result", label, stage, tool=f"skill.{stage}", result={"ok": True})
        for i in range(4):
            self.entry("reviewer", "check", label, stage, check=f"{stage}-check-{i}", ok=True, detail="ok")
        self.entry("reviewer", "stage_end", label, stage, summary=summary, seconds=1.0)
        self.line(label, stage, summary)

    def line(self, label: str, stage: str, summary: str) -> None:
        tokens = {"input": 0, "output": 0, "cost_usd": 0.0, "calls": 0}
        self.log.append(
            {
                "seq": len(self.log) + 1,
                "ts": "2026-01-01T00:00:00+00:00",
                "iter": label,
                "stage": stage,
                "status": "ok",
                "summary": summary,
                "duration_sec": 1.0,
                "tokens": tokens,
            }
        )

    def write(self) -> None:
        for name, items in (("loop_log.jsonl", self.log), ("transcript.jsonl", self.transcript)):
            (self.run / name).write_text("".join(json.dumps(e) + "\n" for e in items))


def build_run(root: Path, iterations: int, kpi_rows: int, ckpt_mb: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    ws = root / "ws"
    splits = build_workspace(ws, kpi_rows, rng)
    run = ws / "results" / "run_20260101_000000"
    run.mkdir(parents=True)
    pool_files = sorted((ws / "augmentation/anomalygen").rglob("*.png"))
    sdg = rows("synth", 40, rng, defect_share=1.0)
    sdg["input_path"], sdg["golden_path"] = (
        "augmentation/anomalygen/reconstructed_image",
        "augmentation/anomalygen/original_image",
    )
    sdg["object_name"] = [f"synth_{i:03d}" for i in range(len(sdg))]
    (run / "synth_pool").mkdir()
    write_csv(sdg, run / "synth_pool/sdg_rows.csv")
    pool_ws = to_workspace_paths(splits["mining_pool"], "augmentation/mining_pool/images")
    source = pd.concat([pool_ws.assign(source="mining_pool"), sdg.assign(source="synthetic")])
    write_csv(source, run / "synth_pool/source_pool.csv")
    atomic_write_json(
        run / "synth_pool/manifest.json",
        {
            "files": {p.relative_to(ws).as_posix(): sha256_file(p) for p in pool_files},
            "synthetic_rows": len(sdg),
            "mining_pool_rows": len(pool_ws),
            "synthetic_labels": sorted(sdg["label"].unique()),
        },
    )
    counts = {
        name: {"rows": len(df), "labels": df["label"].value_counts().sort_index().to_dict()}
        for name, df in splits.items()
    }
    state: dict[str, Any] = {
        "version": 2,
        "started_at": "2026-01-01T00:00:00+00:00",
        "status": "complete",
        "kpi_target": "FAR < 1%",
        "results_dir": str(run),
        "workspace": str(ws),
        "max_iterations": iterations,
        "current_iteration": iterations,
        "config": {"far_target": FAR_TARGET, "top_k_per_target": TOP_K, "baseline_epochs": 8},
        "approval": {"approved": True, "by": "--yes flag", "at": "2026-01-01T00:00:00+00:00"},
        "iterations": {},
        "stop": {"reason": "max_iterations"},
        "counts": counts,
    }
    ledger = Ledger(run)
    ledger.stage("baseline", "preflight", "600 training rows, 6 defect types", ws)
    ledger.entry("planner", "approval", "baseline", "approval_gate", approved=True, by="--yes flag")
    ledger.line("baseline", "approval_gate", "approved by --yes flag")
    labels = ["baseline"] + [f"iter{i}" for i in range(1, iterations + 1)]
    best: dict[str, Any] | None = None
    previous_csv: Path | None = None
    for n, label in enumerate(labels):
        it_dir = run / label
        record: dict[str, Any] = {"status": "complete", "stage_completed": "rca"}
        if label != "baseline":
            mined = splits["mining_pool"].iloc[(n - 1) * 60 : n * 60]
            sdg_now = sdg.iloc[(n - 1) % 8 * 5 : (n - 1) % 8 * 5 + 5] if n <= 8 else sdg.iloc[0:0]
            (it_dir / "mining_filter").mkdir(parents=True)
            (it_dir / "anomalygen").mkdir()
            write_csv(mined, it_dir / "mining_filter/mined_rows.csv")
            write_csv(sdg_now, it_dir / "anomalygen/sdg_rows.csv")
            base = to_workspace_paths(splits["training"], "train/images")
            out_csv = it_dir / "dataset" / f"train_combined_{label}.csv"
            summary = assemble(
                previous=previous_csv,
                base=base,
                additions=[
                    ("mining_pool", to_workspace_paths(mined, "augmentation/mining_pool/images")),
                    ("synthetic", sdg_now),
                ],
                out_csv=out_csv,
                provenance_csv=out_csv.with_name(f"train_combined_{label}_provenance.csv"),
            )
            atomic_write_json(it_dir / "dataset/merge_validation.json", {"rows_checked": summary["rows_out"]})
            record |= {
                "assembled": summary,
                "rows_added": {
                    k: v for k, v in summary["by_source"].items() if k in ("mining_pool", "synthetic")
                },
            }
            previous_csv = out_csv
        quality = n / max(iterations, 1)
        fars = {}
        for name in ("best_val", "latest"):
            csv = it_dir / "inference/kpi" / name / "inference.csv"
            csv.parent.mkdir(parents=True)
            scored(splits["kpi"], quality + (0.05 if name == "latest" else 0), rng).to_csv(csv, index=False)
            fars[name] = evaluate(csv, it_dir / "evaluate/candidates" / name, plots=False)
            (it_dir / "train").mkdir(exist_ok=True)
            (it_dir / "train" / f"{name}.pth").write_bytes(rng.bytes(ckpt_mb << 20))
        chosen = min(("best_val", "latest"), key=lambda c: (fars[c]["far_at_100_recall"], c != "best_val"))
        kpi = evaluate(
            it_dir / "inference/kpi" / chosen / "inference.csv", it_dir / "evaluate/kpi", plots=False
        )
        hold_csv = it_dir / "inference/holdout/inference.csv"
        hold_csv.parent.mkdir(parents=True)
        scored(splits["holdout"], quality, rng).to_csv(hold_csv, index=False)
        hold = evaluate(hold_csv, it_dir / "evaluate/holdout", plots=False)
        ckpt = it_dir / "train" / f"{chosen}.pth"
        sha = sha256_file(ckpt)
        atomic_write_json(
            it_dir / "evaluate/selection.json",
            {
                "chosen": chosen,
                "checkpoint": str(ckpt),
                "checkpoint_sha256": sha,
                "candidates": {
                    c: {
                        "far_at_100_recall": m["far_at_100_recall"],
                        "threshold_at_100_recall": m["threshold_at_100_recall"],
                    }
                    for c, m in fars.items()
                },
            },
        )
        rca = analyze_gaps(
            it_dir / "inference/kpi" / chosen / "inference.csv",
            it_dir / "rca_results",
            far_target=FAR_TARGET,
            top_k_per_label=TOP_K,
        )
        last = n == len(labels) - 1
        decision = (
            {"stop": True, "reason": "max_iterations"} if last else {"stop": False, "reason": "continue"}
        )
        record |= {
            "chosen": chosen,
            "best_ckpt_path": ckpt.relative_to(run).as_posix(),
            "best_ckpt_sha256": sha,
            "kpi_far": kpi["far_at_100_recall"],
            "kpi_threshold": kpi["threshold_at_100_recall"],
            "kpi_auroc": kpi["auroc"],
            "holdout_far": hold["far_at_100_recall"],
            "holdout_auroc": hold["auroc"],
            "candidates": {c: {"kpi_far": m["far_at_100_recall"]} for c, m in fars.items()},
            "rca": rca,
            "decision": decision,
        }
        state["iterations"][label] = record
        before = best["kpi_far"] if best else None
        if best is None or record["kpi_far"] < best["kpi_far"]:
            best = {"iter": label, "checkpoint": record["best_ckpt_path"], "kpi_far": record["kpi_far"]}
        far = record["kpi_far"]
        arrow = f"FAR {before:.1%} → {far:.1%}" if before is not None else f"FAR {far:.1%}"
        summaries = {
            "train": "8 epoch(s) on resnet18",
            "inference": f"scored {kpi_rows} KPI rows with best_val and latest",
            "evaluate": f"{arrow} (target < {FAR_TARGET:.1%}); chose {chosen}: KPI FAR {far:.2%}",
            "report": f"wrote {label}_summary.md",
            "rca": f"{rca['n_selected']} weak target(s) selected; FAR@100%R {far:.2%} vs target < {FAR_TARGET:.2%}",
        }
        for stage in BASELINE[2:] if label == "baseline" else ITERATION:
            ledger.stage(label, stage, summaries.get(stage, f"{stage} done"), ws)
    assert best is not None
    state["best"] = best
    state["training_csv"] = previous_csv.relative_to(run).as_posix() if previous_csv else None
    atomic_write_json(run / "deft_state.json", state)
    for label in labels:
        (run / f"{label}_summary.md").write_text(iteration_summary(run, label))
    record = state["iterations"][best["iter"]]
    atomic_write_json(
        run / "best_model.json",
        {
            "checkpoint": best["checkpoint"],
            "checkpoint_sha256": record["best_ckpt_sha256"],
            "iteration": best["iter"],
            "chosen": record["chosen"],
            "threshold": record["kpi_threshold"],
            "kpi_far": record["kpi_far"],
            "holdout_far": record["holdout_far"],
        },
    )
    ledger.stage(
        "final",
        "loop_stop",
        f"stopped (max_iterations); best model from {best['iter']}, FAR {best['kpi_far']:.2%}",
        ws,
    )
    ledger.write()
    return run


def time_audit(run: Path, repeat: int) -> tuple[float, float, int]:
    """Median audit seconds, the seconds hashing the kept checkpoints once costs, findings."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = audit_run(run)
        times.append(time.perf_counter() - start)
    errors = [f.to_dict() for f in result.findings if f.severity == "error"]
    if errors:
        raise SystemExit(f"the synthetic run does not audit clean: {errors[:3]}")
    records = json.loads((run / "deft_state.json").read_text())["iterations"].values()
    start = time.perf_counter()
    for record in records:
        sha256_file(run / record["best_ckpt_path"])
    return statistics.median(times), time.perf_counter() - start, len(result.findings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, nargs="+", default=[1, 10, 30])
    ap.add_argument("--kpi-rows", type=int, default=400)
    ap.add_argument("--ckpt-mb", type=int, default=8)
    ap.add_argument("--checkpoint", type=Path, help="a real checkpoint to time one sha256 of")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    lines = [
        f"Machine: {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}; KPI and holdout {args.kpi_rows} rows; "
        f"checkpoints {args.ckpt_mb} MB (random bytes); median of {args.repeat}.",
        "",
        "| iterations | stages | transcript entries | run files | run MB | audit s | hashing the kept checkpoints alone s | findings |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        largest = None
        for n in args.iterations:
            root = Path(tmp) / f"n{n}"
            t0 = time.perf_counter()
            run = build_run(root, n, args.kpi_rows, args.ckpt_mb)
            built = time.perf_counter() - t0
            files = [p for p in run.rglob("*") if p.is_file()]
            mb = sum(p.stat().st_size for p in files) / 2**20
            stages = len((run / "loop_log.jsonl").read_text().splitlines())
            entries = len((run / "transcript.jsonl").read_text().splitlines())
            seconds, hashing, findings = time_audit(run, args.repeat)
            lines.append(
                f"| {n} | {stages} | {entries} | {len(files)} | {mb:.0f} | {seconds:.2f} | {hashing:.2f} | {findings} |"
            )
            print(lines[-1], f"(built in {built:.0f}s)", flush=True)
            largest = run
        assert largest is not None
        env = {**os.environ, "COLUMNS": "200"}
        cmd = [sys.executable, "-c", "import specloop.skills.audit"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        imported = time.perf_counter() - t0
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "specloop", "audit", str(largest), "--out", tmp],
            capture_output=True,
            env=env,
            check=False,
        )
        whole = time.perf_counter() - t0
        lines += [
            "",
            f"- `python -c 'import specloop.skills.audit'` (a fresh process): {imported:.1f} s.",
            f"- `specloop audit` on the {args.iterations[-1]}-iteration run, whole command: {whole:.1f} s "
            f"(exit {proc.returncode}).",
        ]
    if args.checkpoint:
        t0 = time.perf_counter()
        sha256_file(args.checkpoint)
        lines.append(
            f"- sha256 of {args.checkpoint.name} ({args.checkpoint.stat().st_size / 2**20:.0f} MB): "
            f"{time.perf_counter() - t0:.2f} s."
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
