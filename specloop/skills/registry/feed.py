"""New production data: which mining-pool rows the watcher has not trained on yet.

A row is named by the sha256 of its CSV values and of its image files, so a restart, a re-sorted
CSV or a re-copied image never counts as new data, and a changed image does. `processed.json`
holds every processed row's hash (with the round that used it) and the last-seen mark of the
pool CSV (size, mtime, sha256), written whole and atomically: a kill loses nothing recorded and a
restart repeats nothing recorded. A torn last line (a writer mid-append) is left for the next look,
and so is a row whose image files are not all there yet.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specloop.ledger.files import atomic_write_json, read_json
from specloop.skills.aoi.images import image_files, light_names
from specloop.skills.aoi.layout import Workspace
from specloop.skills.aoi.schema import COLUMNS
from specloop.skills.registry.layout import WatchLayout


@dataclass(frozen=True)
class PoolRow:
    key: str  # content hash
    line: int  # 1-based line in the pool CSV
    values: dict[str, str]


@dataclass(frozen=True)
class PoolScan:
    mark: dict[str, Any]
    ready: list[PoolRow]  # not processed, every image present
    waiting: int  # not processed, some image still missing
    processed: list[PoolRow]  # already trained on (the replay sample comes from these)


def csv_mark(path: Path) -> dict[str, Any]:
    """The last-seen mark of a CSV: cheap to compare (size, mtime) and exact (sha256)."""
    if not path.is_file():
        return {"size": 0, "mtime_ns": 0, "sha256": ""}
    st = path.stat()
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def same_mark(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return bool(a and b) and a.get("sha256") == b.get("sha256")  # type: ignore[union-attr]


def read_record(ws: Path) -> dict[str, Any]:
    path = WatchLayout(ws).processed
    if not path.is_file():
        return {"rows": {}, "mark": None}
    return read_json(path)


def mark_processed(ws: Path, keys: list[str], round_id: str, mark: dict[str, Any] | None) -> int:
    """Record `keys` as trained on by `round_id` (and the pool mark); the total processed."""
    record = read_record(ws)
    for key in keys:
        record["rows"].setdefault(key, round_id)
    if mark is not None:
        record["mark"] = mark
    atomic_write_json(WatchLayout(ws).processed, record)
    return len(record["rows"])


def _complete_lines(text: str) -> str:
    """Drop a torn last line: a writer may be mid-append."""
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return text


def _row_key(values: dict[str, str], files: list[Path]) -> str:
    h = hashlib.sha256("\x1f".join(values.get(c, "") for c in COLUMNS).encode())
    for f in files:
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def read_rows(path: Path) -> list[PoolRow]:
    """The complete rows of a contract CSV as strings (no content hash: `key` is empty)."""
    text = _complete_lines(path.read_text(encoding="utf-8"))
    return [
        PoolRow("", n, {c: values.get(c) or "" for c in COLUMNS})
        for n, values in enumerate(csv.DictReader(io.StringIO(text)), start=2)
    ]


def scan_pool(ws: Path, lights: list[str], image_ext: str) -> PoolScan:
    """Every pool row not yet processed, split into ready and waiting-for-images."""
    pool = Workspace(ws).split("mining_pool")
    mark = csv_mark(pool.csv)
    if not pool.csv.is_file():
        return PoolScan(mark, [], 0, [])
    done = read_record(ws)["rows"]
    text = _complete_lines(pool.csv.read_text(encoding="utf-8"))
    ready, old, waiting, seen = [], [], 0, set()
    for n, values in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        files = [
            *image_files(
                pool.images_dir,
                values.get("input_path", ""),
                values.get("object_name", ""),
                lights,
                image_ext,
            ),
            *image_files(
                pool.images_dir,
                values.get("golden_path", ""),
                values.get("object_name", ""),
                lights,
                image_ext,
            ),
        ]
        if not all(f.is_file() for f in files):
            waiting += 1
            continue
        key = _row_key(values, files)
        if key in seen:
            continue
        seen.add(key)
        (old if key in done else ready).append(PoolRow(key, n, {c: values.get(c) or "" for c in COLUMNS}))
    return PoolScan(mark, ready, waiting, old)


def spec_lights(spec: Any) -> tuple[list[str], str]:
    """(lights, image extension) of an ExperimentSpec's dataset."""
    ds = spec.dataset.classify
    return light_names(ds.input_map), ds.image_ext
