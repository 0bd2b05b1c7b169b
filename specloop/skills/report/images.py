"""Pictures embedded in the report as PNG data URIs: the KPI trajectory plot, thumbnails of weak
targets and their mined neighbours, and existing evaluation plots scaled down.

Plots use matplotlib's object API on an Agg canvas (no pyplot, no global backend change).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from PIL import Image

from specloop.errors import SpecloopError
from specloop.skills.aoi.images import image_files, load_joined
from specloop.skills.aoi.spec import load_spec

THUMB_HEIGHT = 132
GAP = 4


def png_data_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure_uri(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def trajectory_plot(
    labels: Sequence[str],
    kpi: Sequence[float | None],
    holdout: Sequence[float | None],
    target: float | None,
) -> str | None:
    """FAR@100%R per iteration on the KPI and holdout sets, with the target as a dashed line."""
    if not any(v is not None for v in [*kpi, *holdout]):
        return None
    fig = Figure(figsize=(8.0, 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(labels))

    def series(values: Sequence[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else v * 100 for v in values], dtype=float)

    k, h = series(kpi), series(holdout)
    ax.plot(x, k, marker="o", lw=2.2, color="#2563eb", label="KPI set (steers the loop)")
    if np.isfinite(h).any():
        ax.plot(x, h, marker="s", lw=2.0, ls="-", color="#d97706", label="holdout set (report only)")
    if target is not None:
        ax.axhline(target * 100, ls="--", lw=1.4, color="#16a34a", label=f"target < {target * 100:g}%")
    for xi, v in zip(x, k, strict=True):
        if np.isfinite(v):
            ax.annotate(
                f"{v:.1f}%",
                (xi, v),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=9,
                color="#1e3a8a",
            )
    for xi, v in zip(x, h, strict=True):
        if np.isfinite(v):
            ax.annotate(
                f"{v:.1f}%",
                (xi, v),
                textcoords="offset points",
                xytext=(0, -15),
                ha="center",
                fontsize=9,
                color="#92400e",
            )
    top = np.nanmax(np.concatenate([k, h, [target * 100 if target is not None else 0.0]]))
    ax.set_ylim(0, max(top * 1.25, 1.0))
    ax.set_xlim(-0.4, len(labels) - 0.6)
    ax.set_xticks(x, list(labels))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    ax.set_ylabel("FAR at 100% defect recall")
    ax.grid(axis="y", color="#e5e7eb")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="upper right", frameon=False, fontsize=9)
    fig.tight_layout()
    return _figure_uri(fig)


def scaled_png(path: Path, max_width: int = 520) -> str | None:
    """An existing plot, scaled down to `max_width`, as a data URI (None when unreadable)."""
    try:
        with Image.open(path) as src:
            img = src.convert("RGB")
    except (OSError, ValueError):
        return None
    if img.width > max_width:
        img = img.resize((max_width, round(img.height * max_width / img.width)), Image.Resampling.LANCZOS)
    return png_data_uri(img)


@dataclass(frozen=True)
class ImageLayout:
    """How a row's images are found: the workspace, its lights, extension and join."""

    workspace: Path
    lights: list[str]
    image_ext: str
    concat_type: str | None
    grid_map: dict[str, int] | None

    @classmethod
    def from_workspace(cls, workspace: Path) -> ImageLayout | None:
        spec_path = workspace / "specs" / "baseline_spec.yaml"
        if not spec_path.is_file():
            return None
        try:
            spec = load_spec(spec_path)
        except (SpecloopError, OSError, ValueError):  # no thumbnails, but still a report
            return None
        ds = spec.dataset.classify
        return cls(workspace, spec.lights(), ds.image_ext, ds.concat_type, ds.grid_map)

    def _side(self, roots: Sequence[Path], rel_dir: str, object_name: str) -> np.ndarray | None:
        for root in roots:
            files = image_files(root, rel_dir, object_name, self.lights, self.image_ext)
            if all(f.is_file() for f in files):
                try:
                    return load_joined(files, self.concat_type, self.grid_map)
                except (OSError, ValueError):
                    return None
        return None

    def pair(self, row: dict[str, str], images_dirs: Sequence[str]) -> str | None:
        """`golden | test` of one CSV row, side by side, as a data URI (None when files are missing).

        Paths in CSVs are relative to an images dir (`kpi/images`, the mining pool's `images`) or,
        after staging, to the workspace root; each candidate root is tried in turn.
        """
        roots = [self.workspace / d for d in images_dirs] + [self.workspace]
        obj = str(row.get("object_name", ""))
        golden = self._side(roots, str(row.get("golden_path", "")), obj)
        test = self._side(roots, str(row.get("input_path", "")), obj)
        if golden is None or test is None:
            return None
        h = max(golden.shape[0], test.shape[0])
        canvas = np.full((h, golden.shape[1] + GAP + test.shape[1], 3), 255, dtype=np.uint8)
        canvas[: golden.shape[0], : golden.shape[1]] = golden
        canvas[: test.shape[0], golden.shape[1] + GAP :] = test
        img = Image.fromarray(canvas)
        if img.height != THUMB_HEIGHT:
            width = max(1, round(img.width * THUMB_HEIGHT / img.height))
            img = img.resize(
                (width, THUMB_HEIGHT),
                Image.Resampling.NEAREST if img.height < THUMB_HEIGHT else Image.Resampling.LANCZOS,
            )
        return png_data_uri(img)
