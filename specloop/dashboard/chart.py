"""The KPI trend chart as inline SVG, drawn on the server: no chart library, nothing to download."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

# (metric key, legend label, colour); the golden set gates promotion, the holdout stays honest
SERIES = (
    ("golden_far", "golden set", "#2563eb"),
    ("kpi_far", "KPI set", "#d97706"),
    ("holdout_far", "holdout set", "#059669"),
)
WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 64
# room inside the plot so the first and last version's labels and points are not cut
PAD = 48


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def trend_svg(versions: Sequence[Mapping[str, object]]) -> str:
    """FAR@100 %R per version (oldest left) for the golden, KPI and holdout sets.

    ``versions`` come newest first, as the registry lists them.
    """
    ordered = list(reversed(versions))
    points: dict[str, list[tuple[int, float]]] = {key: [] for key, _, _ in SERIES}
    for i, version in enumerate(ordered):
        metrics = version.get("metrics") or {}
        assert isinstance(metrics, Mapping)
        for key, _, _ in SERIES:
            value = _number(metrics.get(key))
            if value is not None:
                points[key].append((i, value))
    values = [v for series in points.values() for _, v in series]
    if not values:
        return '<p class="empty" id="trend-empty">No version has metrics yet.</p>'
    top = max(max(values) * 1.15, 0.01)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = (plot_w - 2 * PAD) / max(len(ordered) - 1, 1)

    def x(i: int) -> float:
        return LEFT + (PAD + i * step if len(ordered) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    parts = [
        f'<svg id="trend-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'style="width: 100%; max-width: {WIDTH * 1.4:.0f}px; height: auto" role="img" aria-label="FAR at 100% recall per version">'
    ]
    for frac in (0.0, 0.5, 1.0):
        ty = y(top * frac)
        parts.append(f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{WIDTH - RIGHT}" y2="{ty:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end">{top * frac:.1%}</text>')
    for i, version in enumerate(ordered):
        label = escape(str(version.get("version", "")))
        parts.append(
            f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="end" '
            f'transform="rotate(-25 {x(i):.1f} {HEIGHT - BOTTOM + 16})" class="tick">{label}</text>'
        )
    for n, (key, name, colour) in enumerate(SERIES):
        series = points[key]
        if len(series) > 1:
            path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in series)
            parts.append(
                f'<polyline class="series" data-series="{key}" points="{path}" fill="none" '
                f'stroke="{colour}" stroke-width="3"/>'
            )
        for i, v in series:
            title = f"{escape(str(ordered[i].get('version', '')))} {name}: {v:.2%}"
            parts.append(
                f'<circle data-series="{key}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="5" fill="{colour}">'
                f"<title>{title}</title></circle>"
            )
        lx = LEFT + n * 150
        parts.append(f'<rect x="{lx}" y="6" width="14" height="14" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 20}" y="18">{name}</text>')
    parts.append("</svg>")
    return "".join(parts)
