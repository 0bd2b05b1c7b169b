"""Data hygiene: no leakage into training, row counts that add up, an unchanged synthetic pool,
and no path outside the workspace read or written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from specloop.errors import ContractError
from specloop.skills.aoi.layout import Workspace
from specloop.skills.aoi.pool import changed_files, to_workspace_paths
from specloop.skills.aoi.schema import FIRST_DATA_LINE, leakage_keys, unsafe_relative_path
from specloop.skills.audit.findings import Findings
from specloop.skills.audit.run_records import STATE_FILE, TRANSCRIPT_FILE, RunRecords, inside

HELD_OUT = ("validation", "kpi", "holdout")
MAX_PER_FILE = 5  # leaks listed one by one per file; the rest are counted in one finding
WRITE_KEYS = frozenset({"results_dir", "out_dir", "out_csv", "report_path", "provenance_csv", "cache"})
WEIGHT_KEYS = ("pretrained", "backbone", "embedder", "weights")
PATH_KEYS = re.compile(r"(_path|_dir|^csv|_csv|^checkpoint|^images_dir|^root)$")
ABSOLUTE = re.compile(r"^/[^\s'\"]*$")
POSIX_PATH = re.compile(r"PosixPath\('([^']+)'\)")
SYNTH_DIR = "synth_pool"


def training_csvs(run: RunRecords) -> list[tuple[str, Path]]:
    """Each iteration's assembled training CSV, in iteration order (state or disk)."""
    out = []
    for label in run.iterations:
        path = run.dir / label / "dataset" / f"train_combined_{label}.csv"
        if path.is_file():
            out.append((label, path))
    return out


def _csv(run: RunRecords, out: Findings, check: str, path: Path) -> pd.DataFrame | None:
    try:
        return run.frame(path)
    except ContractError as exc:
        out.add(check, str(exc), file=run.rel(path))
        return None


def _mined_rows(src: pd.DataFrame | None) -> int | None:
    return int((src["source"] == "mining_pool").sum()) if src is not None and "source" in src else None


def check_data(run: RunRecords, out: Findings) -> None:
    ws_path = run.workspace
    ws = Workspace(ws_path) if ws_path is not None and ws_path.is_dir() else None
    if ws is None:
        out.add(
            "data.workspace",
            "the workspace this run read is not there, so leakage and the synthetic pool cannot be checked",
            file=STATE_FILE,
            where="workspace",
            expected="an existing directory",
            found=ws_path,
            severity="warning",
        )
    else:
        _workspace_unchanged(run, out, ws)
        _leakage(run, out, ws)
        _synth_pool(run, out, ws)
    _provenance(run, out, ws)
    _outside(run, out)


def _workspace_unchanged(run: RunRecords, out: Findings, ws: Workspace) -> None:
    counts = run.state.get("counts") if isinstance(run.state.get("counts"), dict) else {}
    out.saw("data.workspace", f"{ws.root}: {', '.join(counts) or 'no'} split counts")
    for split in ws.splits():
        recorded = (counts.get(split.name) or {}).get("rows")
        if recorded is None:
            continue
        df = _csv(run, out, "data.workspace", split.csv) if split.csv.is_file() else None
        now = len(df) if df is not None else None
        if now != recorded:
            out.add(
                "data.workspace",
                f"the workspace's {split.name} set changed since the run read it",
                file=str(split.csv),
                expected=f"{recorded} rows (deft_state.json counts.{split.name})",
                found=f"{now} rows" if now is not None else "missing",
                severity="warning",
            )


def _held_out(run: RunRecords, out: Findings, ws: Workspace) -> dict[str, tuple[str, int]]:
    """Leakage key → (held-out file, line), in the split's own and in workspace-root coordinates."""
    index: dict[str, tuple[str, int]] = {}
    for name in HELD_OUT:
        split = ws.split(name)
        raw = _csv(run, out, "data.leakage", split.csv) if split.csv.is_file() else None
        if raw is None:
            continue
        shown = ws.rel(split.csv)
        for frame in (raw, to_workspace_paths(raw, ws.rel(split.images_dir))):
            for i, key in enumerate(leakage_keys(frame)):
                index.setdefault(key, (shown, i + FIRST_DATA_LINE))
    return index


def _leakage(run: RunRecords, out: Findings, ws: Workspace) -> None:
    index = _held_out(run, out, ws)
    base = ws.split("training").csv
    files: list[tuple[str, Path]] = [(str(base), base)] if base.is_file() else []
    files += [(run.rel(p), p) for _, p in training_csvs(run)]
    for shown, path in files:
        df = _csv(run, out, "data.leakage", path)
        if df is None:
            continue
        out.saw("data.leakage", f"{shown}: {len(df)} rows")
        leaks = [(i, index[k]) for i, k in enumerate(leakage_keys(df)) if k in index] if len(df) else []
        for i, (held_file, held_line) in leaks[:MAX_PER_FILE]:
            out.add(
                "data.leakage",
                f"a training row is also in {held_file} (same input_path, golden_path, label, "
                "object_name, boardname)",
                file=shown,
                where=f"line {i + FIRST_DATA_LINE}",
                expected="no held-out row in training",
                found=f"{held_file} line {held_line}",
            )
        if len(leaks) > MAX_PER_FILE:
            out.add("data.leakage", f"{len(leaks) - MAX_PER_FILE} more leaked row(s)", file=shown)


def _synth_pool(run: RunRecords, out: Findings, ws: Workspace) -> None:
    pool_dir = run.dir / SYNTH_DIR
    manifest = run.json(pool_dir / "manifest.json")
    rel = f"{SYNTH_DIR}/manifest.json"
    if manifest is None:
        if any(e.get("stage") == "preflight" and e.get("status") == "ok" for _, e in run.log_entries):
            out.add("data.synth-pool", "preflight finished but the staged pool has no manifest", file=rel)
        return
    files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    out.saw("data.synth-pool", f"{len(files)} pool file(s) against their sha256")
    for change in changed_files(ws, {"files": files}):
        path, _, how = change.removesuffix(")").rpartition(" (")  # "rel/path (modified)"
        out.add(
            "data.synth-pool",
            f"a synthetic pool file was {how} after the pool was staged",
            file=str(ws.root / path),
            where=f"listed in {rel}" if how != "added" else None,
            expected=files.get(path, "not in the manifest"),
            found=how,
        )
    sdg = run.dir / SYNTH_DIR / "sdg_rows.csv"
    sdg_df = _csv(run, out, "data.synth-pool", sdg) if sdg.is_file() else None
    source = pool_dir / "source_pool.csv"
    src = _csv(run, out, "data.synth-pool", source) if source.is_file() else None
    staged_counts = (
        (sdg, sdg_df, "synthetic_rows", "synthetic", len(sdg_df) if sdg_df is not None else None),
        (source, src, "mining_pool_rows", "mining-pool", _mined_rows(src)),
    )
    for path, frame, key, what, n in staged_counts:
        if frame is not None and manifest.get(key) != n:
            out.add(
                "data.synth-pool",
                f"the staged {what} rows differ from the manifest's count",
                file=run.rel(path),
                expected=f"{manifest.get(key)} rows ({rel})",
                found=f"{n} rows",
            )
    if sdg_df is None:
        return
    staged = set(leakage_keys(sdg_df)) if len(sdg_df) else set()
    for label in run.iterations:
        ingested = run.dir / label / "anomalygen" / "sdg_rows.csv"
        df = _csv(run, out, "data.synth-pool", ingested) if ingested.is_file() else None
        if df is None or not len(df):
            continue
        foreign = [i for i, k in enumerate(leakage_keys(df)) if k not in staged]
        if foreign:
            out.add(
                "data.synth-pool",
                f"{len(foreign)} ingested synthetic row(s) are not in the staged pool",
                file=run.rel(ingested),
                where=f"line {foreign[0] + FIRST_DATA_LINE}",
                expected=f"rows of {SYNTH_DIR}/sdg_rows.csv",
                found="a row from elsewhere",
            )


def _rows(run: RunRecords, path: Path) -> int | None:
    if not path.is_file():
        return None
    try:
        return len(run.frame(path))
    except ContractError:
        return None


def _provenance(run: RunRecords, out: Findings, ws: Workspace | None) -> None:
    previous: Path | None = None
    for label, path in training_csvs(run):
        _one_provenance(run, out, ws, label, path, previous)
        previous = path


def _one_provenance(
    run: RunRecords, out: Findings, ws: Workspace | None, label: str, path: Path, previous: Path | None
) -> None:
    rel = run.rel(path)
    prov_path = path.with_name(f"{path.stem}_provenance.csv")
    prel = run.rel(prov_path)
    df = _csv(run, out, "data.provenance", path)
    if df is None:
        return
    if not prov_path.is_file():
        out.add("data.provenance", "the training CSV has no provenance file", file=prel, found="missing")
        return
    prov = _csv(run, out, "data.provenance", prov_path)
    if prov is None or "source" not in prov:
        return
    out.saw("data.provenance", f"{rel}: {len(df)} rows from {prel}")
    if len(prov) != len(df):
        out.add(
            "data.provenance",
            "the provenance file and the training CSV differ in rows",
            file=prel,
            expected=f"{len(df)} rows ({rel})",
            found=f"{len(prov)} rows",
        )
    else:
        differ = (leakage_keys(prov) != leakage_keys(df)).to_numpy().nonzero()[0] if len(df) else []
        if len(differ):
            line = int(differ[0]) + FIRST_DATA_LINE
            out.add(
                "data.provenance",
                "a training row is not the row its provenance line names",
                file=rel,
                where=f"line {line}",
                expected=f"the row of {prel} line {line}",
                found="a different row",
            )
    by_source = {str(k): int(v) for k, v in prov["source"].value_counts().items()}
    _sources(run, out, label, prel, by_source, previous, ws)
    _state_counts(run, out, label, len(df), by_source)


def _base_rows(run: RunRecords, ws: Workspace | None) -> int | None:
    """Rows of the workspace training set as the run read it (the state), else as it is now."""
    counts = run.state.get("counts")
    recorded = ((counts or {}).get("training") or {}).get("rows") if isinstance(counts, dict) else None
    if isinstance(recorded, int):
        return recorded
    return _rows(run, ws.split("training").csv) if ws is not None else None


def _sources(
    run: RunRecords,
    out: Findings,
    label: str,
    prel: str,
    by_source: dict[str, int],
    previous: Path | None,
    ws: Workspace | None,
) -> None:
    """Each source's row count in the provenance equals the file that source came from."""
    it_dir = run.dir / label
    mined_path = it_dir / "mining_filter" / "mined_rows.csv"
    mined = run.frame(mined_path) if _rows(run, mined_path) else None  # survivors of the unified pool
    tagged = mined["source"] if mined is not None and "source" in mined else None
    expected: dict[str, tuple[int | None, str]] = {
        "mining_pool": (
            (_rows(run, mined_path) or 0) if tagged is None else int((tagged == "mining_pool").sum()),
            f"{label}/mining_filter/mined_rows.csv",
        ),
        "synthetic": (
            (_rows(run, it_dir / "anomalygen" / "sdg_rows.csv") or 0)
            + (0 if tagged is None else int((tagged == "synthetic").sum())),
            f"{label}/anomalygen/sdg_rows.csv and the synthetic rows of mined_rows.csv",
        ),
    }
    if previous is None:
        expected["base_train"] = (_base_rows(run, ws), "the workspace training set")
    else:
        expected["previous_iter_train"] = (_rows(run, previous), run.rel(previous))
    for source in sorted(set(by_source) - set(expected)):
        out.add(
            "data.provenance",
            f"rows from an unexpected source {source!r}",
            file=prel,
            where="source column",
            expected=" or ".join(expected),
            found=f"{by_source[source]} × {source}",
        )
    for source, (want, origin) in expected.items():
        got = by_source.get(source, 0)
        if want is not None and got != want:
            out.add(
                "data.provenance",
                f"{source} rows do not add up",
                file=prel,
                where="source column",
                expected=f"{want} rows ({origin})",
                found=f"{got} rows",
            )


def _state_counts(run: RunRecords, out: Findings, label: str, rows: int, by_source: dict[str, int]) -> None:
    record = run.iterations.get(label, {})
    assembled = record.get("assembled") if isinstance(record.get("assembled"), dict) else None
    where = f"iterations.{label}"
    if assembled is not None:
        if assembled.get("rows_out") != rows:
            out.add(
                "data.provenance",
                "the state's assembled row count differs from the training CSV",
                file=STATE_FILE,
                where=f"{where}.assembled.rows_out",
                expected=rows,
                found=assembled.get("rows_out"),
            )
        if isinstance(assembled.get("by_source"), dict) and assembled["by_source"] != by_source:
            out.add(
                "data.provenance",
                "the state's rows by source differ from the provenance file",
                file=STATE_FILE,
                where=f"{where}.assembled.by_source",
                expected=by_source,
                found=assembled["by_source"],
            )
    added = record.get("rows_added")
    if isinstance(added, dict):
        for source, n in added.items():
            if by_source.get(source, 0) != n:
                out.add(
                    "data.provenance",
                    f"the state's added {source} rows differ from the provenance file",
                    file=STATE_FILE,
                    where=f"{where}.rows_added.{source}",
                    expected=by_source.get(source, 0),
                    found=n,
                )
    report = run.json(run.dir / label / "dataset" / "merge_validation.json")
    if report is not None and report.get("rows_checked") != rows:
        out.add(
            "data.provenance",
            "the validate stage checked a different number of rows",
            file=f"{label}/dataset/merge_validation.json",
            where="rows_checked",
            expected=rows,
            found=report.get("rows_checked"),
        )


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, string) for every string in a JSON/YAML structure."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{key}[{i}]")
    elif isinstance(value, str):
        yield key, value


def _paths_in(value: str) -> list[str]:
    """Absolute paths a recorded string names: the string itself, or `PosixPath('…')` reprs in it."""
    if ABSOLUTE.match(value):
        return [value]
    return POSIX_PATH.findall(value)


class _Outside:
    """Paths outside the workspace (reads) or outside its results/ (writes), each reported once."""

    def __init__(self, run: RunRecords, out: Findings) -> None:
        self.run, self.out = run, out
        ws = run.workspace
        self.root = str(ws) if ws else None
        self.results = str(ws / "results") if ws else None
        self.seen: set[tuple[str, str]] = set()

    def visit(self, file: str, where: str, key: str, value: str) -> None:
        leaf = key.rsplit(".", 1)[-1].split("[")[0]
        for path in _paths_in(value):
            self._absolute(file, where or key, leaf, key, path)
        if not value.startswith("/") and "${" not in value and PATH_KEYS.search(leaf) and value:
            reason = unsafe_relative_path(value)
            if reason and (file, value) not in self.seen:
                self.seen.add((file, value))
                self.out.add(
                    "data.outside-workspace", f"{key} {reason}", file=file, where=where or key, found=value
                )

    def _absolute(self, file: str, where: str, leaf: str, key: str, path: str) -> None:
        if self.root is None or (file, path) in self.seen:
            return
        writes = leaf in WRITE_KEYS
        bound = self.results if writes else self.root
        if bound is not None and inside(path, bound):
            return
        self.seen.add((file, path))
        weights = any(w in key.lower() for w in WEIGHT_KEYS) and not writes
        self.out.add(
            "data.outside-workspace",
            "model weights read from outside the workspace"
            if weights
            else f"the run {'wrote' if writes else 'read'} a path outside {'the workspace results' if writes else 'the workspace'}",
            file=file,
            where=where,
            expected=f"a path under {bound}",
            found=path,
            severity="warning" if weights else "error",
        )


def _outside(run: RunRecords, out: Findings) -> None:
    check = _Outside(run, out)
    n = 0
    for key, value in _walk(run.state):
        check.visit(STATE_FILE, key, key, value)
    specs = sorted(run.dir.glob("*/train/spec.yaml")) + sorted(run.dir.glob("*.yaml"))
    for spec in specs:
        try:
            data = yaml.safe_load(spec.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            out.add("data.outside-workspace", "the spec is not readable YAML", file=run.rel(spec))
            continue
        for key, value in _walk(data):
            check.visit(run.rel(spec), key, key, value)
    if run.best_model:
        for key, value in _walk(run.best_model):
            check.visit("best_model.json", key, key, value)
    for number, entry in run.transcript_entries:
        if entry.get("kind") == "tool_call":
            n += 1
            for key, value in _walk((entry.get("data") or {}).get("args") or {}):
                check.visit(TRANSCRIPT_FILE, f"line {number} ({key})", key, value)
    csvs = [p for _, p in training_csvs(run)]
    csvs += sorted(run.dir.glob("*/mining_filter/mined_rows.csv")) + sorted(
        run.dir.glob("*/anomalygen/sdg_rows.csv")
    )
    csvs += [
        p
        for p in (run.dir / SYNTH_DIR / "sdg_rows.csv", run.dir / SYNTH_DIR / "source_pool.csv")
        if p.is_file()
    ]
    reasons: dict[str, str | None] = {}  # training sets repeat their rows: judge each path once
    for path in csvs:
        df = _csv(run, out, "data.outside-workspace", path)
        if df is None:
            continue
        for col in ("input_path", "golden_path"):
            for value in df[col].unique():
                if value not in reasons:
                    reasons[value] = unsafe_relative_path(value)
                if reasons[value]:
                    line = int((df[col] == value).to_numpy().argmax()) + FIRST_DATA_LINE
                    out.add(
                        "data.outside-workspace",
                        f"{col} {reasons[value]}",
                        file=run.rel(path),
                        where=f"line {line}",
                        found=value,
                    )
    out.saw("data.outside-workspace", f"state, {len(specs)} spec(s), {n} tool calls, {len(csvs)} CSV(s)")
