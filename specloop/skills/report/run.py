"""Read one DEFT run directory into plain dicts for the report and the iteration summaries.

Only `deft_state.json` is required. Every other file is optional: a report rendered after the
baseline alone, or after a hard stop, shows what exists and leaves the rest out. Where the state
and a stage's own file both hold a number, the state wins (it is what the loop decided on).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from specloop.errors import SpecloopError
from specloop.ledger.files import disk_bytes
from specloop.ledger.layout import RunLayout, label_order
from specloop.ledger.loop_log import read_entries

BASE_SOURCES = frozenset({"base_train", "previous_iter_train"})


def _json(path: Path) -> dict[str, Any]:
    """A JSON object from disk, or {} when the file is absent or unreadable (optional inputs)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return None


def _parquet(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError):
        return None


def number(value: Any) -> float | None:
    """A finite float, or None for anything missing, non-numeric or NaN."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _int_map(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    out = {}
    for k, v in value.items():
        n = number(v)
        if n is not None:
            out[str(k)] = int(n)
    return out


@dataclass
class Iteration:
    label: str
    dir: Path
    record: dict[str, Any]
    previous: str | None
    kpi: dict[str, Any] = field(default_factory=dict)
    holdout: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    rca: dict[str, Any] = field(default_factory=dict)
    routing: dict[str, Any] = field(default_factory=dict)
    ingest: dict[str, Any] = field(default_factory=dict)
    knn: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, int] = field(default_factory=dict)
    unreachable: str | None = None

    @property
    def status(self) -> str:
        return str(self.record.get("status") or "pending")

    @property
    def stage_completed(self) -> str | None:
        value = self.record.get("stage_completed")
        return str(value) if value else None

    @property
    def kpi_far(self) -> float | None:
        far = number(self.record.get("kpi_far"))
        return far if far is not None else number(self.kpi.get("far_at_100_recall"))

    @property
    def holdout_far(self) -> float | None:
        far = number(self.record.get("holdout_far"))
        return far if far is not None else number(self.holdout.get("far_at_100_recall"))

    @property
    def kpi_auroc(self) -> float | None:
        value = number(self.record.get("kpi_auroc"))
        return value if value is not None else number(self.kpi.get("auroc"))

    @property
    def holdout_auroc(self) -> float | None:
        value = number(self.record.get("holdout_auroc"))
        return value if value is not None else number(self.holdout.get("auroc"))

    @property
    def threshold(self) -> float | None:
        value = number(self.record.get("kpi_threshold"))
        return value if value is not None else number(self.kpi.get("threshold_at_100_recall"))

    @property
    def chosen(self) -> str | None:
        value = self.record.get("chosen") or self.selection.get("chosen")
        return str(value) if value else None

    @property
    def candidates(self) -> dict[str, float | None]:
        """FAR@100%R of each candidate checkpoint (`best_val`, `latest`)."""
        out: dict[str, float | None] = {}
        from_file = self.selection.get("candidates") or {}
        from_state = self.record.get("candidates") or {}
        for name in ("best_val", "latest"):
            far = number((from_state.get(name) or {}).get("kpi_far"))
            if far is None:
                far = number((from_file.get(name) or {}).get("far_at_100_recall"))
            if name in from_state or name in from_file:
                out[name] = far
        return out

    @property
    def checkpoint(self) -> str | None:
        path = self.record.get("best_ckpt_path")
        if not path and self.chosen:
            path = ((self.selection.get("candidates") or {}).get(self.chosen) or {}).get("checkpoint")
        return str(path) if path else None

    @property
    def targets_by_label(self) -> dict[str, int]:
        """The weak KPI rows this iteration set out to fix (selected by the previous RCA)."""
        return _int_map(self.record.get("targets_by_label"))

    @property
    def rca_selected(self) -> dict[str, int]:
        """The targets this model's own RCA selected for the next iteration."""
        return _int_map(self.rca.get("selected_by_label"))

    @property
    def rca_weak(self) -> dict[str, int]:
        return _int_map(self.rca.get("weak_by_label"))

    @property
    def mining(self) -> dict[str, int]:
        """Candidates, kept, rejected, duplicates and excluded rows of this iteration's k-NN mining."""
        state = self.record.get("mining") or {}
        out = {}
        for key, csv_key in (
            ("candidates", "candidate_count"),
            ("kept", "kept_count"),
            ("rejected", "rejected_count"),
            ("duplicates", "duplicate_count"),
        ):
            n = number(state.get(key))
            if n is None:
                n = number(self.knn.get(csv_key))
            if n is not None:
                out[key] = int(n)
        excluded = number(state.get("excluded"))
        if excluded is None:
            parts = [number(v) for k, v in self.knn.items() if k.startswith("excluded_")]
            parts = [p for p in parts if p is not None]
            excluded = sum(parts) if parts else None
        if excluded is not None:
            out["excluded"] = int(excluded)
        return out

    @property
    def rows_added(self) -> dict[str, int]:
        """New training rows of this iteration by source (the state's count, else the provenance CSV)."""
        added = _int_map(self.record.get("rows_added"))
        if added:
            return added
        return {k: v for k, v in self.provenance.items() if k not in BASE_SOURCES}

    @property
    def training_rows(self) -> int | None:
        return sum(self.provenance.values()) if self.provenance else None

    @property
    def per_defect_type(self) -> dict[str, dict[str, Any]]:
        value = self.kpi.get("per_defect_type")
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Disk:
    """What the run directory takes, and its checkpoints: kept on disk or pruned by retention."""

    run_bytes: int
    checkpoint_bytes: int
    kept: int  # distinct checkpoint files (hard links counted once)
    pruned: int


def disk_use(run_dir: Path, skip: frozenset[str] = frozenset()) -> Disk:
    inodes: dict[tuple[int, int], int] = {}
    pruned = 0
    for train_dir in sorted(run_dir.glob("*/train")):
        for f in train_dir.glob("*.pth"):
            st = f.stat()
            inodes[(st.st_dev, st.st_ino)] = st.st_size
        written = _json(train_dir / CHECKPOINT_MANIFEST).get("checkpoints")
        pruned += (
            sum(1 for e in written if isinstance(e, dict) and e.get("pruned"))
            if isinstance(written, list)
            else 0
        )
    return Disk(disk_bytes(run_dir, skip), sum(inodes.values()), len(inodes), pruned)


@dataclass
class Run:
    dir: Path
    state: dict[str, Any]
    log: list[dict[str, Any]]
    iterations: list[Iteration]
    best_model: dict[str, Any]

    @property
    def far_target(self) -> float | None:
        return number((self.state.get("config") or {}).get("far_target"))

    @property
    def workspace(self) -> Path | None:
        ws = self.state.get("workspace")
        return Path(ws) if ws else None

    def iteration(self, label: str) -> Iteration | None:
        return next((it for it in self.iterations if it.label == label), None)

    def evaluated(self) -> list[Iteration]:
        return [it for it in self.iterations if it.kpi_far is not None]

    def best(self) -> Iteration | None:
        """The iteration `best_model.json` names, else the lowest KPI FAR (earliest on ties)."""
        named = self.iteration(str(self.best_model.get("iteration", "")))
        if named is not None and named.kpi_far is not None:
            return named
        evaluated = self.evaluated()
        return min(evaluated, key=lambda it: it.kpi_far) if evaluated else None


CHECKPOINT_MANIFEST = "checkpoints.json"  # what a training wrote (skills/changenet/train.py)


def _load_iteration(run_dir: Path, label: str, record: dict[str, Any], previous: str | None) -> Iteration:
    files = RunLayout(run_dir).iteration(label)
    it = Iteration(label=label, dir=files.root, record=record, previous=previous)
    it.selection = _json(files.selection)
    it.kpi = _json(files.evaluate_dir / "kpi" / "metrics.json")
    it.holdout = _json(files.evaluate_dir / "holdout" / "metrics.json")
    it.rca = _json(files.rca_dir / "metrics.json")
    it.routing = _json(files.routing_dir / "routing_summary.json")
    it.ingest = _json(files.anomalygen_dir / "ingest_summary.json")
    knn = _csv(files.mining_dir / "knn_summary.csv")
    if knn is not None and len(knn):
        it.knn = knn.iloc[0].to_dict()
    prov = _csv(files.provenance_csv)
    if prov is not None and "source" in prov.columns:
        it.provenance = {str(k): int(v) for k, v in prov["source"].value_counts().sort_index().items()}
    unreachable = files.rca_dir / "unreachable_kpi.txt"
    if unreachable.is_file():
        it.unreachable = unreachable.read_text(encoding="utf-8", errors="replace").strip()
    return it


def load_run(run_dir: Path) -> Run:
    """Everything the report shows, read from `run_dir` alone."""
    run_dir = Path(run_dir)
    layout = RunLayout(run_dir)
    state_file = layout.state
    if not state_file.is_file():
        raise SpecloopError(f"{state_file}: no run state here; is {run_dir} a DEFT run directory?")
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SpecloopError(f"{state_file}: not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    if not isinstance(state, dict):
        raise SpecloopError(f"{state_file}: the run state must be a JSON object.")
    records = state.get("iterations") or {}
    labels = sorted(records, key=label_order)
    iterations = []
    for i, label in enumerate(labels):
        record = records[label] if isinstance(records[label], dict) else {}
        iterations.append(_load_iteration(run_dir, label, record, labels[i - 1] if i else None))
    log = read_entries(layout.log)
    return Run(
        dir=run_dir,
        state=state,
        log=log,
        iterations=iterations,
        best_model=_json(layout.best_model),
    )


def weak_targets(run: Run, it: Iteration) -> pd.DataFrame | None:
    """The KPI rows `it` targeted: the previous iteration's selected RCA rows, weakest first."""
    if it.previous is None:
        return None
    gaps = _parquet(RunLayout(run.dir).iteration(it.previous).kpi_gaps)
    if gaps is None or "selected" not in gaps.columns:
        return None
    selected = gaps[gaps["selected"].astype(bool)]
    if "weakness" in selected.columns:
        selected = selected.sort_values("weakness", ascending=False, kind="stable")
    return selected.reset_index(drop=True)


def mined_rows(it: Iteration) -> pd.DataFrame | None:
    return _csv(it.dir / "mining_filter" / "mined_rows.csv")
