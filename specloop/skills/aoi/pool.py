"""Stage the pre-generated synthetic pool once per run, and detect later changes to it.

Synthetic rows pair `original_image/` (OK, the golden side) with `reconstructed_image/` (NG, the
test side) by file name; their paths are relative to the workspace root, like every row the loop
assembles. When `defect_spec.jsonl` declares the pairs, it is also the pool's allocation: the
staged pairs per `defect_type` must match the declared counts, or pre-flight stops.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from specloop.errors import ContractError, HardStop
from specloop.ledger.files import atomic_write_json, read_json, sha256_file
from specloop.skills.aoi.layout import Workspace
from specloop.skills.aoi.schema import pad_columns, read_csv, write_csv

SYNTHETIC_LABEL_FALLBACK = "synthetic_defect"


def to_workspace_paths(df: pd.DataFrame, images_rel: str) -> pd.DataFrame:
    """Rewrite input/golden paths from an images dir to the workspace root (one images root)."""
    out = df.copy()
    prefix = images_rel.strip("/")
    for col in ("input_path", "golden_path"):
        out[col] = prefix + "/" + out[col].str.lstrip("/")
    return out


def _pool_files(ws: Workspace) -> list[Path]:
    files = []
    for d in (ws.reconstructed_dir, ws.original_dir):
        if d.is_dir():
            files += sorted(p for p in d.iterdir() if p.is_file())
    return files


def _split_stem(name: str, lights: list[str], ext: str) -> str | None:
    stem = name[: -len(ext)] if name.endswith(ext) else None
    if stem is None:
        return None
    if not lights:
        return stem
    for light in lights:
        if stem.endswith(f"_{light}"):
            return stem[: -len(light) - 1]
    return None


def defect_spec_entries(ws: Workspace) -> dict[str, dict[str, Any]]:
    """The declared pairs of `defect_spec.jsonl` by object name (empty when the file is absent)."""
    meta: dict[str, dict[str, Any]] = {}
    if not ws.defect_spec.is_file():
        return meta
    name = ws.rel(ws.defect_spec)
    for line, raw in enumerate(ws.defect_spec.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ContractError(
                f"{name}, line {line}: not a JSON object ({exc.msg}).", rule="jsonl"
            ) from None
        if not isinstance(entry, dict):
            raise ContractError(f"{name}, line {line}: not a JSON object.", rule="jsonl")
        key = entry.get("object_name") or entry.get("stem")
        if key:
            meta[str(key)] = entry
    return meta


def defect_type(entry: dict[str, Any]) -> str:
    return str(entry.get("defect_type") or SYNTHETIC_LABEL_FALLBACK)


def synthetic_rows(ws: Workspace, lights: list[str], image_ext: str) -> pd.DataFrame:
    """One ChangeNet row per synthetic object whose every light exists on both sides."""
    meta = defect_spec_entries(ws)
    rec = (
        {p.name for p in ws.reconstructed_dir.glob(f"*{image_ext}")}
        if ws.reconstructed_dir.is_dir()
        else set()
    )
    orig = {p.name for p in ws.original_dir.glob(f"*{image_ext}")} if ws.original_dir.is_dir() else set()
    objects = sorted({s for s in (_split_stem(n, lights, image_ext) for n in rec & orig) if s})
    rows = []
    for obj in objects:
        names = [f"{obj}_{light}{image_ext}" for light in lights] if lights else [f"{obj}{image_ext}"]
        if not all(n in rec and n in orig for n in names):
            continue
        m = meta.get(obj, {})
        rows.append(
            {
                "input_path": ws.rel(ws.reconstructed_dir),
                "golden_path": ws.rel(ws.original_dir),
                "label": defect_type(m),
                "object_name": obj,
                "project": "anomalygen",
                "boardname": str(m.get("boardname", "")),
                "comp_type_1": str(m.get("comp_type", "")),
                "description": "pre-generated synthetic defect",
            }
        )
    return pad_columns(pd.DataFrame(rows))


def _counts(labels: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in labels.value_counts().sort_index().items()}


def declared_allocation(ws: Workspace) -> dict[str, int] | None:
    """Pairs per `defect_type` that `defect_spec.jsonl` declares (None when there is no such file)."""
    if not ws.defect_spec.is_file():
        return None
    return _counts(pd.Series([defect_type(e) for e in defect_spec_entries(ws).values()], dtype=str))


def require_allocation(ws: Workspace, sdg: pd.DataFrame) -> None:
    """Staged pairs per defect type must equal the declared allocation: a hard stop, never retried
    (a pair missing one side or one light, or a pair on disk that no line declares)."""
    declared = declared_allocation(ws)
    if declared is None:
        return
    staged = _counts(sdg["label"]) if len(sdg) else {}
    wrong = [t for t in sorted(set(declared) | set(staged)) if declared.get(t, 0) != staged.get(t, 0)]
    if wrong:
        shown = ", ".join(
            f"{t} {staged.get(t, 0)} staged vs {declared.get(t, 0)} declared" for t in wrong[:3]
        )
        more = f" and {len(wrong) - 3} more type(s)" if len(wrong) > 3 else ""
        raise HardStop(
            "allocation-mismatch",
            f"{ws.rel(ws.defect_spec)}: allocation mismatch, the staged synthetic pairs per defect_type "
            f"do not match the declared allocation ({shown}{more})",
        )


def stage_pool(ws: Workspace, out_dir: Path, *, lights: list[str], image_ext: str) -> dict[str, Any]:
    """Write synth_pool/{manifest.json, sdg_rows.csv, source_pool.csv, source_pool.parquet} once,
    after checking the synthetic pool against its declared allocation."""
    manifest_path = out_dir / "manifest.json"
    if manifest_path.is_file():
        return read_json(manifest_path)
    sdg = synthetic_rows(ws, lights, image_ext)
    require_allocation(ws, sdg)
    out_dir.mkdir(parents=True, exist_ok=True)
    mining = ws.split("mining_pool")
    if mining.csv.is_file():
        pool = to_workspace_paths(read_csv(mining.csv), ws.rel(mining.images_dir))
        pool["source"] = "mining_pool"
        pool["source_file"] = ws.rel(mining.csv)
    else:
        pool = pad_columns(pd.DataFrame())
    sdg_src = sdg.copy()
    sdg_src["source"] = "synthetic"
    sdg_src["source_file"] = ws.rel(ws.defect_spec) if ws.defect_spec.is_file() else ws.rel(ws.anomalygen_dir)
    write_csv(sdg, out_dir / "sdg_rows.csv")
    source = pd.concat([pool, sdg_src], ignore_index=True)
    write_csv(source, out_dir / "source_pool.csv")
    source.to_parquet(out_dir / "source_pool.parquet", index=False)
    manifest = {
        "files": {ws.rel(p): sha256_file(p) for p in _pool_files(ws)},
        "synthetic_rows": len(sdg),
        "mining_pool_rows": int((source["source"] == "mining_pool").sum()),
        "synthetic_labels": sorted(sdg["label"].unique().tolist()) if len(sdg) else [],
        "synthetic_by_defect_type": _counts(sdg["label"]) if len(sdg) else {},
        "declared_allocation": declared_allocation(ws),
    }
    atomic_write_json(manifest_path, manifest)  # last: its presence marks the staging complete
    return manifest


def changed_files(ws: Workspace, manifest: dict[str, Any]) -> list[str]:
    """Pool files added, removed or modified since staging (empty when unchanged)."""
    recorded: dict[str, str] = manifest["files"]
    current = {ws.rel(p): p for p in _pool_files(ws)}
    changed = [f"{rel} (removed)" for rel in sorted(set(recorded) - set(current))]
    changed += [f"{rel} (added)" for rel in sorted(set(current) - set(recorded))]
    changed += [
        f"{rel} (modified)"
        for rel in sorted(set(recorded) & set(current))
        if sha256_file(current[rel]) != recorded[rel]
    ]
    return changed


def require_unchanged(ws: Workspace, manifest: dict[str, Any]) -> None:
    changed = changed_files(ws, manifest)
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise ContractError(
            f"the synthetic pool changed since it was staged: {shown} [synthetic-pool-mutated]"
        )
