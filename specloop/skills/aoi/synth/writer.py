"""Lay out a complete synthetic DEFT workspace: images, CSVs, the pre-generated pool, spec, data card.

Everything is generated into a temporary folder beside the target and renamed into place at the
end, so a workspace is either complete or absent. Randomness comes from `numpy` sub-streams keyed
by (seed, split, row), so the same seed and size give byte-identical CSVs and images.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from specloop.errors import SpecloopError
from specloop.skills.aoi.layout import Workspace
from specloop.skills.aoi.schema import COLUMNS, write_csv
from specloop.skills.aoi.synth import card
from specloop.skills.aoi.synth.boards import BOARD_NAMES, LIGHTS
from specloop.skills.aoi.synth.components import Placement, make_placements
from specloop.skills.aoi.synth.plan import PASS, SIZES, SPLITS, RowPlan, plan_split
from specloop.skills.aoi.synth.samples import Job, Pictures, golden, render, render_many

IMAGE_EXT = ".png"
PROJECT = "specloop-synth-pcb"
Counts = dict[str, dict[str, dict[str, int]]]


@dataclass
class SynthReport:
    root: Path
    size: str
    seed: int
    seconds: float
    bytes_on_disk: int
    counts: Counts = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["root"] = str(self.root)
        return out


def _split_images(ws: Workspace, split: str) -> Path:
    if split in ("training", "validation"):
        return ws.train_images
    if split in ("kpi", "holdout"):
        return ws.kpi_images
    return ws.mining_pool_dir / "images"


def _split_csv(ws: Workspace, split: str) -> Path:
    return ws.split(split).csv


def _csv_row(row: RowPlan) -> dict[str, str]:
    p = row.placement
    verdict = "good" if row.label == PASS else row.label.replace("_", " ")
    return {
        "input_path": f"test/{row.board}",
        "golden_path": f"golden/{row.board}/{p.comp_name}",
        "label": row.label,
        "object_name": row.object_name,
        "project": PROJECT,
        "boardname": row.board,
        "comp_type_2": p.package,
        "mpass_mfail": "MPASS" if row.label == PASS else "MFAIL",
        "is_valid": "1",
        "comp_name": p.comp_name,
        "part_type": p.part_type,
        "number_of_pins": str(p.n_pins),
        "description": f"{p.describe()}: {verdict}",
        "comp_type_1": p.family,
    }


class _Writer:
    """Writes files into the temporary root; goldens are written once and hard-linked per row."""

    def __init__(self) -> None:
        self._first: dict[tuple[Path, str], Path] = {}
        self._dirs: set[Path] = set()

    def _mkdir(self, folder: Path) -> None:
        if folder not in self._dirs:
            folder.mkdir(parents=True, exist_ok=True)
            self._dirs.add(folder)

    def put(self, folder: Path, stem: str, pictures: Pictures) -> None:
        self._mkdir(folder)
        for light in LIGHTS:
            (folder / f"{stem}_{light}{IMAGE_EXT}").write_bytes(pictures[light])

    def put_golden(self, folder: Path, stem: str, pictures: Pictures) -> None:
        self._mkdir(folder)
        for light in LIGHTS:
            target = folder / f"{stem}_{light}{IMAGE_EXT}"
            first = self._first.get((folder, light))
            if first is None:
                target.write_bytes(pictures[light])
                self._first[(folder, light)] = target
                continue
            try:
                os.link(first, target)
            except OSError:
                target.write_bytes(pictures[light])


def _disk_bytes(root: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            st = os.stat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _check_target(root: Path, size: str) -> None:
    if size not in SIZES:
        raise SpecloopError(f"Unknown workspace size {size!r}; choose one of {', '.join(SIZES)}.")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise SpecloopError(
            f"{root} already exists and is not empty; choose a new directory or empty it first."
        )


def synthesize_workspace(
    root: Path, size: str = "small", seed: int = 0, progress: bool = True, *, workers: int | None = None
) -> SynthReport:
    """Generate a complete synthetic DEFT workspace at `root` (which must be absent or empty).

    `workers` processes render in parallel (default: 1 for `tiny`, else up to 2); the output is the
    same for any number of workers.
    """
    root = Path(root)
    _check_target(root, size)
    if workers is None:
        workers = 1 if size == "tiny" else min(2, os.cpu_count() or 1)
    started = time.perf_counter()
    plan = SIZES[size]
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.synth-tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        positions = {
            name: make_placements(plan.positions_per_board, np.random.default_rng([seed, 7, bi]))
            for bi, name in enumerate(BOARD_NAMES)
        }
        rows = {
            split: plan_split(split, plan.rows(split), positions, np.random.default_rng([seed, 11, si]))
            for si, split in enumerate(SPLITS)
        }
        counts = _write_all(Workspace(tmp), rows, positions, seed, progress, workers)
        seconds = time.perf_counter() - started
        ws = Workspace(tmp)
        ws.spec.parent.mkdir(parents=True, exist_ok=True)
        ws.spec.write_text(card.baseline_spec(len(LIGHTS)), encoding="utf-8")
        ws.dataset_card.write_text(card.dataset_card(size, seed, seconds, counts, plan), encoding="utf-8")
        if root.exists():
            root.rmdir()
        os.rename(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthReport(root, size, seed, time.perf_counter() - started, _disk_bytes(root), counts)


class _Renderer:
    """Renders jobs in order, in worker processes when asked; output never depends on `workers`."""

    CHUNK = 24

    def __init__(self, workers: int) -> None:
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)

    def __enter__(self) -> _Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def map(self, jobs: list[Job]) -> Iterator[tuple[Pictures, Pictures | None]]:
        if self._pool is None:
            yield from map(render, jobs)
            return
        chunks = [jobs[i : i + self.CHUNK] for i in range(0, len(jobs), self.CHUNK)]
        for result in self._pool.map(render_many, chunks):
            yield from result


def _write_all(
    ws: Workspace,
    rows: dict[str, list[RowPlan]],
    positions: dict[str, list[Placement]],
    seed: int,
    show: bool,
    workers: int,
) -> Counts:
    writer = _Writer()
    goldens: dict[tuple[str, str], Pictures] = {}
    pos_index = {
        (b, p.comp_name): (bi, pi) for bi, b in enumerate(BOARD_NAMES) for pi, p in enumerate(positions[b])
    }

    def texture_key(b: str, p: Placement) -> int:
        bi, pi = pos_index[(b, p.comp_name)]
        return seed * 1_000_003 + bi * 1000 + pi

    def golden_of(b: str, p: Placement) -> Pictures:
        key = (b, p.comp_name)
        if key not in goldens:
            bi, pi = pos_index[key]
            goldens[key] = golden(b, p, texture_key(b, p), np.random.default_rng([seed, 13, bi, pi]))
        return goldens[key]

    counts: Counts = {}
    columns = (
        TextColumn("[bold]{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, disable=not show) as bar, _Renderer(workers) as renderer:
        for si, split in enumerate(SPLITS):
            split_rows = rows[split]
            task = bar.add_task(split, total=len(split_rows))
            tally: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            synthetic = split == "anomalygen"
            jobs = [
                Job(
                    row.board,
                    row.placement,
                    row.label,
                    texture_key(row.board, row.placement),
                    (seed, 17, si, row.index),
                    synthetic,
                )
                for row in split_rows
            ]
            pictures = renderer.map(jobs)
            if synthetic:
                _write_anomalygen(ws, split_rows, pictures, writer, bar, task, tally)
            else:
                images = _split_images(ws, split)
                records = []
                for row, (pics, _) in zip(split_rows, pictures, strict=True):
                    rec = _csv_row(row)
                    writer.put(images / rec["input_path"], row.object_name, pics)
                    writer.put_golden(
                        images / rec["golden_path"], row.object_name, golden_of(row.board, row.placement)
                    )
                    records.append(rec)
                    tally[row.label][row.board] += 1
                    bar.advance(task)
                csv_path = _split_csv(ws, split)
                csv_path.parent.mkdir(parents=True, exist_ok=True)
                write_csv(pd.DataFrame(records, columns=list(COLUMNS)), csv_path)
            counts[split] = {
                label: dict(sorted(by_board.items())) for label, by_board in sorted(tally.items())
            }
    return counts


def _write_anomalygen(
    ws: Workspace,
    rows: list[RowPlan],
    pictures: Iterator[tuple[Pictures, Pictures | None]],
    writer: _Writer,
    bar: Progress,
    task: int,
    tally: dict[str, dict[str, int]],
) -> None:
    lines = []
    for row, (ng, ok) in zip(rows, pictures, strict=True):
        p = row.placement
        stem = f"synth_{row.object_name}_{row.label}"
        writer.put(ws.original_dir, stem, ok or {})
        writer.put(ws.reconstructed_dir, stem, ng)
        spec = {
            "stem": stem,
            "object_name": stem,
            "defect_type": row.label,
            "comp_type": p.family,
            "comp_type_2": p.package,
            "comp_name": p.comp_name,
            "part_type": p.part_type,
            "number_of_pins": p.n_pins,
            "boardname": row.board,
            "lights": list(LIGHTS),
            "image_ext": IMAGE_EXT,
        }
        lines.append(json.dumps(spec, sort_keys=True))
        tally[row.label][row.board] += 1
        bar.advance(task)
    ws.defect_spec.write_text("\n".join(lines) + "\n", encoding="utf-8")
