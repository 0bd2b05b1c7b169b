"""Component positions on a board and the geometry of one crop: pads, solder, body, silkscreen.

Geometry is in crop pixels around the component centre, long axis along x before the position's
orientation is applied. Shapes belong to a frame (`board`: pads and traces; `silk`: the printed
legend, which has its own registration error; `comp`: what the pick-and-place put down) and a
layer (`board`, `solder` — fillets, clipped to the pads —, `top`, `overlay`), drawn in that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from specloop.skills.aoi.synth.defects import Defect
from specloop.skills.aoi.synth.materials import Mat

KINDS: dict[str, tuple[str, str]] = {  # kind -> (comp_type_1 family, designator prefix)
    "chip_r": ("CHIP", "R"),
    "chip_c": ("CHIP", "C"),
    "ic": ("IC", "U"),
    "diode": ("DIODE", "D"),
}


@dataclass(frozen=True)
class Placement:
    """One component position of a board design (shared by every board of that line)."""

    kind: str
    comp_name: str
    package: str
    part_type: str
    n_pins: int
    orientation: int  # degrees, a multiple of 90
    length: float
    width: float
    fillet: float
    trace_mask: int  # bit i: lead i has a trace leaving the crop
    via: tuple[float, float] | None  # a tented via, crop offset from centre

    @property
    def family(self) -> str:
        return KINDS[self.kind][0]

    def describe(self) -> str:
        names = {"chip_r": "chip resistor", "chip_c": "chip capacitor", "ic": "IC", "diode": "diode"}
        return f"{self.part_type} {self.package} {names[self.kind]} {self.comp_name}"


@dataclass(frozen=True)
class Shape:
    layer: str  # board | solder | top | overlay
    frame: str  # board | silk | comp | crop
    mat: int
    pts: np.ndarray  # (n, 2) float, x right / y down


@dataclass
class Scene:
    shapes: list[Shape] = field(default_factory=list)
    text: str = ""
    silk_half: tuple[float, float] = (0.0, 0.0)  # half extents of the silk outline (local frame)

    def add(self, layer: str, frame: str, mat: int, pts: np.ndarray) -> None:
        self.shapes.append(Shape(layer, frame, int(mat), pts))


def rect(cx: float, cy: float, w: float, h: float) -> np.ndarray:
    return np.array(
        [
            [cx - w / 2, cy - h / 2],
            [cx + w / 2, cy - h / 2],
            [cx + w / 2, cy + h / 2],
            [cx - w / 2, cy + h / 2],
        ]
    )


_UNIT_CIRCLE = np.stack(
    [
        np.cos(np.linspace(0, 2 * np.pi, 20, endpoint=False)),
        np.sin(np.linspace(0, 2 * np.pi, 20, endpoint=False)),
    ],
    axis=1,
)


def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return _UNIT_CIRCLE * np.array([rx, ry]) + np.array([cx, cy])


def segment(x0: float, y0: float, x1: float, y1: float, width: float) -> np.ndarray:
    d = np.array([x1 - x0, y1 - y0])
    n = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9) * width / 2
    a, b = np.array([x0, y0]), np.array([x1, y1])
    return np.array([a + n, b + n, b - n, a - n])


def _blob(scene: Scene, layer: str, frame: str, cx: float, cy: float, rx: float, ry: float) -> None:
    """A domed solder blob: steep bright rim, softer slope, flat specular top."""
    scene.add(layer, frame, Mat.SOLDER_HIGH, ellipse(cx, cy, rx, ry))
    scene.add(layer, frame, Mat.SOLDER_LOW, ellipse(cx, cy, rx * 0.78, ry * 0.78))
    scene.add(layer, frame, Mat.SOLDER_FLAT, ellipse(cx, cy, rx * 0.5, ry * 0.5))


def _outline(scene: Scene, hx: float, hy: float, t: float = 1.1) -> None:
    for pts in (
        rect(0, -hy, 2 * hx + t, t),
        rect(0, hy, 2 * hx + t, t),
        rect(-hx, 0, t, 2 * hy),
        rect(hx, 0, t, 2 * hy),
    ):
        scene.add("board", "silk", Mat.SILK, pts)
    scene.silk_half = (hx, hy)


def _marking(scene: Scene, cx: float, cy: float, n: int, w: float, h: float, gap: float) -> None:
    """Laser/ink marking drawn as a row of glyph blocks (legible as text at this size)."""
    x0 = cx - (n * w + (n - 1) * gap) / 2 + w / 2
    for i in range(n):
        scene.add("top", "comp", Mat.MARKING, rect(x0 + i * (w + gap), cy, w, h))


def _traces(scene: Scene, p: Placement, starts: list[tuple[float, float, int, int]]) -> None:
    """Traces leave the crop from some pads: (x, y, direction sign, axis) per lead."""
    for i, (x, y, s, axis) in enumerate(starts):
        if not (p.trace_mask >> i) & 1:
            continue
        if axis == 0:
            scene.add("board", "board", Mat.TRACE, rect(x + s * 20, y, 40, 3.0))
        else:
            scene.add("board", "board", Mat.TRACE, rect(x, y + s * 20, 2.6, 40))
    if p.via is not None:
        scene.add("board", "board", Mat.VIA, ellipse(p.via[0], p.via[1], 2.6, 2.6))


def _two_terminal(scene: Scene, p: Placement, d: Defect | None) -> None:
    L, W = p.length, p.width
    pad_w, pad_h = 0.42 * L, W + 4
    pad_x = L / 2 - 0.04 * L
    is_diode = p.kind == "diode"
    dtype = d.type if d else None
    _traces(scene, p, [(s * (pad_x + pad_w / 2), 0.0, s, 0) for s in (-1, 1)])
    _outline(scene, pad_x + pad_w / 2 + 2.5, pad_h / 2 + 2.5)
    if is_diode:  # cathode bar on the legend
        hx = pad_x + pad_w / 2 + 2.5
        scene.add("board", "silk", Mat.SILK, rect(-hx - 1.2, 0, 2.4, pad_h + 5))
    for s in (-1, 1):
        scene.add("board", "board", Mat.PAD, rect(s * pad_x, 0, pad_w, pad_h))

    if dtype == "missing":
        for s in (-1, 1):
            _blob(scene, "top", "board", s * pad_x, 0, pad_w * 0.42, pad_h * 0.4)
        return
    if dtype == "tombstone":
        up = d.end if d else 1
        _blob(scene, "top", "board", -up * pad_x, 0, pad_w * 0.42, pad_h * 0.4)
        x_face = up * (L / 2 - 0.2 * L)
        scene.add("solder", "comp", Mat.SOLDER_HIGH, rect(x_face + up * 4.5, 0, 4.5, W + 1))
        scene.add("solder", "comp", Mat.SOLDER_LOW, rect(x_face + up * 8, 0, 3, W))
        body = Mat.BODY_R if p.kind == "chip_r" else Mat.BODY_C
        scene.add("top", "comp", body, rect(x_face - up * 3.5, 0, 3.0, W - 1))
        scene.add("top", "comp", Mat.TERMINAL_FACE, rect(x_face, 0, 5.5, W))
        return

    f = p.fillet
    term_w = 0.16 * L if not is_diode else 0.2 * L
    excess = set(d.sites) if dtype == "excess_solder" and d else set()
    for i, s in enumerate((-1, 1)):
        x_end = s * L / 2
        if i in excess:
            continue
        scene.add("solder", "comp", Mat.SOLDER_FLAT, rect(x_end + s * 6, 0, 12, W * 0.9))
        scene.add(
            "solder", "comp", Mat.SOLDER_LOW, rect(x_end + s * (1.6 * f + 0.8), 0, 1.6 * f + 0.8, W * 0.96)
        )
        scene.add("solder", "comp", Mat.SOLDER_HIGH, rect(x_end + s * 0.9 * f, 0, 1.8 * f, W))
    if is_diode:
        tab_w = 0.2 * L
        for s in (-1, 1):
            scene.add("top", "comp", Mat.TERMINAL, rect(s * (L / 2 - tab_w / 2 + 1.5), 0, tab_w, W * 0.6))
        scene.add("top", "comp", Mat.BODY_D, rect(0, 0, L - 2 * 1.5, W))
        scene.add("top", "comp", Mat.BAND, rect(-(L / 2 - 1.5 - 0.14 * L), 0, 0.26 * L, W))
    else:
        for s in (-1, 1):
            scene.add("top", "comp", Mat.TERMINAL, rect(s * (L / 2 - term_w / 2), 0, term_w, W))
        body = Mat.BODY_R if p.kind == "chip_r" else Mat.BODY_C
        scene.add("top", "comp", body, rect(0, 0, L - 2 * term_w, W - 0.6))
        if p.kind == "chip_r":
            _marking(scene, 0, 0, 3, 2.2, 3.6, 1.2)
    for i, s in enumerate((-1, 1)):
        if i in excess:
            k = d.scale if d else 1.5
            _blob(scene, "top", "comp", s * (L / 2 + 1.0), 0, 0.2 * L * k, (W / 2 + 1.0) * k)


def _ic(scene: Scene, p: Placement, d: Defect | None) -> None:
    L, W = p.length, p.width
    n_side = p.n_pins // 2
    pitch = L / n_side
    xs = [(i - (n_side - 1) / 2) * pitch for i in range(n_side)]
    lead_w, foot = 0.5 * pitch, 5.0
    pad_w, pad_h = 0.68 * pitch, 8.5
    pad_y = W / 2 + 5.5
    dtype = d.type if d else None
    leads = [(x, s) for s in (1, -1) for x in (xs if s == 1 else xs[::-1])]  # pin 1 bottom-left, CCW
    _traces(scene, p, [(x, s * (pad_y + pad_h / 2), s, 1) for x, s in leads])
    _outline(scene, L / 2 + 2, W / 2 + 1.5)
    hx, hy = L / 2 + 2, W / 2 + 1.5
    scene.add("board", "silk", Mat.SILK, ellipse(-hx - 2.5, hy + 2.5, 1.3, 1.3))
    for x, s in leads:
        scene.add("board", "board", Mat.PAD, rect(x, s * pad_y, pad_w, pad_h))

    if dtype == "missing":
        for x, s in leads:
            _blob(scene, "top", "board", x, s * pad_y, pad_w * 0.45, pad_h * 0.42)
        return
    excess = set(d.sites) if dtype == "excess_solder" and d else set()
    for i, (x, s) in enumerate(leads):
        if i in excess:
            continue
        toe = s * (W / 2 + 2.5 + foot)
        scene.add("solder", "comp", Mat.SOLDER_FLAT, rect(x, toe + s * 2.5, lead_w * 1.15, 5))
        scene.add(
            "solder",
            "comp",
            Mat.SOLDER_LOW,
            rect(x, toe + s * (1.2 * p.fillet + 0.4), lead_w * 1.2, 1.6 * p.fillet),
        )
        scene.add(
            "solder", "comp", Mat.SOLDER_HIGH, rect(x, toe + s * 0.5 * p.fillet, lead_w * 1.2, 1.0 * p.fillet)
        )
    if dtype == "bridge" and d:
        row = [(x, s) for x, s in leads if s == d.side]
        row.sort()
        for g in d.sites:
            (x0, s), (x1, _) = row[g], row[g + 1]
            y, span = s * (pad_y + 0.5), x1 - x0
            scene.add("top", "board", Mat.SOLDER_HIGH, ellipse((x0 + x1) / 2, y, 0.5 * span + 2.6, 4.2))
            scene.add("top", "board", Mat.SOLDER_LOW, ellipse((x0 + x1) / 2, y, 0.5 * span + 1.4, 3.0))
            scene.add("top", "board", Mat.SOLDER_FLAT, ellipse((x0 + x1) / 2, y, 0.5 * span, 1.7))
    for x, s in leads:
        scene.add("top", "comp", Mat.PIN_BEND, rect(x, s * (W / 2 + 1.25), lead_w, 2.5))
        scene.add("top", "comp", Mat.PIN, rect(x, s * (W / 2 + 2.5 + foot / 2), lead_w, foot))
    scene.add("top", "comp", Mat.BODY_IC, rect(0, 0, L, W))
    scene.add("top", "comp", Mat.PIN1, ellipse(-L / 2 + 3.6, W / 2 - 3.6, 2.4, 2.4))
    scene.add("top", "comp", Mat.PIN1, ellipse(-L / 2, 0, 1.8, 2.6))  # end notch
    _marking(scene, 1.0, -2.5, 5, 2.0, 3.0, 0.9)
    _marking(scene, -1.5, 2.5, 3, 2.0, 3.0, 0.9)
    for i, (x, s) in enumerate(leads):
        if i in excess:
            k = d.scale if d else 1.5
            _blob(scene, "top", "comp", x, s * (pad_y + 1.0), pad_w * 0.6 * k, pad_h * 0.48 * k)


def build_scene(p: Placement, defect: Defect | None = None) -> Scene:
    """Every shape of the crop at position `p`, with `defect` drawn in when given."""
    scene = Scene(text=p.comp_name)
    if p.kind == "ic":
        _ic(scene, p, defect)
    else:
        _two_terminal(scene, p, defect)
    if defect is not None and defect.type == "scratch":
        x0, y0, x1, y1 = defect.line
        mx, my = (x0 + x1) / 2 + 1.5, (y0 + y1) / 2 - 1.0
        scene.add("overlay", "crop", Mat.SCRATCH, segment(x0, y0, mx, my, defect.width))
        scene.add("overlay", "crop", Mat.SCRATCH, segment(mx, my, x1, y1, defect.width * 0.8))
    return scene


def make_placements(n: int, rng: np.random.Generator) -> list[Placement]:
    """`n` component positions for one board design; every kind appears at least twice when n ≥ 8."""
    cycle = ("chip_r", "chip_c", "ic", "diode", "chip_r", "chip_c", "diode", "ic")
    numbers = {
        prefix: iter(sorted(rng.choice(np.arange(1, 400), size=n, replace=False)))
        for _, prefix in KINDS.values()
    }
    out: list[Placement] = []
    for i in range(n):
        kind = cycle[i % len(cycle)]
        prefix = KINDS[kind][1]
        name = f"{prefix}{next(numbers[prefix])}"
        via = None
        if rng.random() < 0.5:
            via = (
                float(rng.choice([-1, 1]) * rng.uniform(24, 27)),
                float(rng.choice([-1, 1]) * rng.uniform(22, 27)),
            )
        mask = int(rng.integers(1, 256))
        fillet = float(rng.uniform(0.9, 1.3))
        if kind in ("chip_r", "chip_c"):
            big = rng.random() < 0.5
            package = ("R" if kind == "chip_r" else "C") + ("0805" if big else "0603")
            length = (25.0 if big else 21.0) * rng.uniform(0.97, 1.03)
            width = (13.0 if big else 11.0) * rng.uniform(0.97, 1.03)
            if kind == "chip_r":
                part = str(rng.choice(["RC-10K", "RC-4K7", "RC-100R", "RC-1K", "RC-22R"]))
            else:
                part = str(rng.choice(["CC-100N", "CC-1U", "CC-10N", "CC-4U7"]))
            orientation = int(rng.choice([0, 90]))
            out.append(Placement(kind, name, package, part, 2, orientation, length, width, fillet, mask, via))
        elif kind == "diode":
            length, width = 20.0 * rng.uniform(0.97, 1.03), 11.0 * rng.uniform(0.97, 1.03)
            part = str(rng.choice(["1N4148W", "BAS16", "SS14", "MBR0520"]))
            orientation = int(rng.choice([0, 90, 180, 270]))
            out.append(
                Placement(kind, name, "SOD123", part, 2, orientation, length, width, fillet, mask, via)
            )
        else:
            length, width = 24.0 * rng.uniform(0.98, 1.02), 17.0 * rng.uniform(0.97, 1.03)
            part = str(rng.choice(["LM358", "NE555", "24C02", "TL072", "74HC1G"]))
            orientation = int(rng.choice([0, 90, 180, 270]))
            out.append(Placement(kind, name, "SOIC8", part, 8, orientation, length, width, fillet, mask, via))
    return out
