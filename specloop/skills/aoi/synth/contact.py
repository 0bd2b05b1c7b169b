"""A contact sheet of a workspace: one row per label, golden | test pairs with every light."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from specloop.errors import SpecloopError
from specloop.skills.aoi.images import image_files, read_rgb
from specloop.skills.aoi.layout import Workspace
from specloop.skills.aoi.schema import GOOD_LABEL, read_csv
from specloop.skills.aoi.spec import load_spec, resolve_path
from specloop.skills.aoi.synth.defects import DEFECT_TYPES

_SCALE = 2
_GAP = 10
_LABEL_W = 150
_HEAD = 18


def _pick(df, label: str, per_class: int) -> list[dict[str, str]]:
    """Up to `per_class` rows of `label`, round-robin over boards so lines differ."""
    rows = df[df["label"] == label]
    by_board = [g.to_dict("records") for _, g in rows.groupby("boardname", sort=True)]
    picked: list[dict[str, str]] = []
    i = 0
    while len(picked) < per_class and any(i < len(g) for g in by_board):
        picked += [g[i] for g in by_board if i < len(g)][: per_class - len(picked)]
        i += 1
    return picked


def _stack(files: list[Path]) -> np.ndarray:
    return np.concatenate([read_rgb(f) for f in files], axis=0)


def _pool_pairs(
    ws: Workspace, lights: list[str], ext: str, per_class: int
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Pre-generated (OK, NG) pairs of the pool's most frequent defect types (from defect_spec.jsonl)."""
    if not ws.defect_spec.is_file():
        return []
    entries = [
        json.loads(line) for line in ws.defect_spec.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    by_type: dict[str, dict[str, str]] = {}
    freq: dict[str, int] = {}
    for e in entries:
        dtype = str(e.get("defect_type", ""))
        by_type.setdefault(dtype, e)
        freq[dtype] = freq.get(dtype, 0) + 1
    rank = {d: i for i, d in enumerate(DEFECT_TYPES)}
    order = sorted(by_type, key=lambda d: (-freq[d], rank.get(d, len(rank)), d))  # the pool's focus first
    cells = []
    for dtype in order[:per_class]:
        e = by_type[dtype]
        stem = str(e.get("stem") or e.get("object_name"))
        ok = _stack(image_files(ws.original_dir, ".", stem, lights, ext))
        ng = _stack(image_files(ws.reconstructed_dir, ".", stem, lights, ext))
        cells.append((f"{e.get('boardname', '')} {dtype}", ok, ng))
    return cells


def contact_sheet(root: Path, out_png: Path, per_class: int = 3) -> Path:
    """Write a labelled PNG grid of the KPI set (plus pre-generated pool pairs) and return its path."""
    ws = Workspace(Path(root))
    spec = load_spec(ws.spec)
    ds = spec.dataset.classify
    lights, ext = spec.lights(), ds.image_ext
    csv = resolve_path(ds.test_dataset.csv_path, ws.root) or ws.split("kpi").csv
    images_dir = resolve_path(ds.test_dataset.images_dir, ws.root) or ws.kpi_images
    df = read_csv(csv)
    present = set(df["label"])
    labels = [GOOD_LABEL] + [d for d in DEFECT_TYPES if d in present]
    labels += sorted(present - set(labels))

    grid: list[tuple[str, list[tuple[str, np.ndarray, np.ndarray]]]] = []
    for label in labels:
        cells = []
        for r in _pick(df, label, per_class):
            gold = _stack(image_files(images_dir, r["golden_path"], r["object_name"], lights, ext))
            test = _stack(image_files(images_dir, r["input_path"], r["object_name"], lights, ext))
            cells.append((r["boardname"], gold, test))
        grid.append((label, cells))
    pool = _pool_pairs(ws, lights, ext, per_class)
    if pool:
        grid.append(("synthetic pool\n(OK | NG)", pool))
    if not any(cells for _, cells in grid):
        raise SpecloopError(f"{csv}: no rows to put on a contact sheet.")

    sample = next(c for _, cells in grid for c in cells)[1]
    cell_h, cell_w = sample.shape[0] * _SCALE, sample.shape[1] * 2 * _SCALE
    width = _LABEL_W + per_class * (cell_w + _GAP)
    height = _HEAD + len(grid) * (cell_h + _HEAD + _GAP)
    sheet = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    light_note = " / ".join(lights) if lights else "single light"
    draw.text((4, 2), f"golden | test, lights top to bottom: {light_note}", fill=(0, 0, 0), font=font)
    y = _HEAD
    for label, cells in grid:
        draw.text((6, y + _HEAD + cell_h // 2 - 10), label, fill=(0, 0, 0), font=font)
        for i, (board, left, right) in enumerate(cells):
            x = _LABEL_W + i * (cell_w + _GAP)
            draw.text((x, y + 2), board, fill=(60, 60, 60), font=font)
            pair = np.concatenate([left, np.full((left.shape[0], 2, 3), 255, np.uint8), right], axis=1)
            img = Image.fromarray(pair).resize((cell_w, cell_h), Image.NEAREST)
            sheet.paste(img, (x, y + _HEAD))
        y += cell_h + _HEAD + _GAP
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.with_name(f".{out_png.name}.tmp-{os.getpid()}")
    sheet.save(tmp, format="PNG")
    os.replace(tmp, out_png)
    return out_png
