"""The defect catalogue: which component kinds each defect applies to, and its random parameters.

The geometry of a defect is drawn by the component builders (`components.py`); this module says
what a defect is and draws the numbers that make each instance different.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFECT_TYPES: tuple[str, ...] = (
    "missing",
    "shift",
    "tombstone",
    "bridge",
    "excess_solder",
    "polarity",
    "scratch",
)

DESCRIPTIONS: dict[str, str] = {
    "missing": "component absent; bare pads with reflowed solder domes",
    "shift": "component displaced 4.5-8 px (sometimes rotated) off its pads",
    "tombstone": "chip stands on one end: bright end cap on one pad, the other pad bare",
    "bridge": "solder joins two neighbouring IC leads",
    "excess_solder": "ballooned solder blobs well beyond the pads",
    "polarity": "polar part rotated 180 degrees (diode band / IC pin-1 mark at the wrong end)",
    "scratch": "a long bright scratch across body and board",
}

ALL_KINDS: frozenset[str] = frozenset({"chip_r", "chip_c", "ic", "diode"})
APPLIES_TO: dict[str, frozenset[str]] = {
    "missing": ALL_KINDS,
    "shift": ALL_KINDS,
    "tombstone": frozenset({"chip_r", "chip_c"}),
    "bridge": frozenset({"ic"}),
    "excess_solder": ALL_KINDS,
    "polarity": frozenset({"ic", "diode"}),
    "scratch": ALL_KINDS,
}


@dataclass(frozen=True)
class Defect:
    """One defect instance. Fields unused by a type keep their defaults."""

    type: str
    offset: tuple[float, float] = (0.0, 0.0)  # shift: component displacement, px
    rotation: float = 0.0  # shift: extra rotation, degrees
    end: int = 1  # tombstone: which end stands up (+1 / -1)
    scale: float = 1.0  # excess_solder: blob growth
    sites: tuple[int, ...] = ()  # excess_solder: terminals/leads affected; bridge: lead gaps
    side: int = 1  # bridge: which row of leads
    line: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # scratch: x0, y0, x1, y1 (crop px)
    width: float = 1.0  # scratch width, px


def sample_defect(kind: str, defect_type: str, rng: np.random.Generator) -> Defect:
    """Draw the parameters of one `defect_type` on a component of `kind`."""
    if kind not in APPLIES_TO[defect_type]:
        raise ValueError(f"defect {defect_type} does not apply to {kind}")
    if defect_type == "shift":
        dist = rng.uniform(4.5, 8.0)
        ang = rng.uniform(0, 2 * np.pi)
        rot = float(rng.uniform(-14, 14)) if rng.random() < 0.4 else 0.0
        return Defect("shift", offset=(dist * np.cos(ang), dist * np.sin(ang)), rotation=rot)
    if defect_type == "tombstone":
        return Defect("tombstone", end=int(rng.choice([-1, 1])))
    if defect_type == "excess_solder":
        n_sites = 2 if kind != "ic" else 8
        k = int(rng.integers(1, min(3, n_sites) + 1))
        sites = tuple(sorted(int(s) for s in rng.choice(n_sites, size=k, replace=False)))
        return Defect("excess_solder", scale=float(rng.uniform(1.2, 1.5)), sites=sites)
    if defect_type == "bridge":
        gaps = (int(rng.integers(0, 3)),)
        if rng.random() < 0.3:
            gaps = tuple(sorted({gaps[0], int(rng.integers(0, 3))}))
        return Defect("bridge", sites=gaps, side=int(rng.choice([-1, 1])))
    if defect_type == "scratch":
        ang = rng.uniform(0, np.pi)
        length = rng.uniform(30, 50)
        cx, cy = 32 + rng.uniform(-6, 6), 32 + rng.uniform(-6, 6)
        dx, dy = 0.5 * length * np.cos(ang), 0.5 * length * np.sin(ang)
        return Defect(
            "scratch",
            line=(cx - dx, cy - dy, cx + dx, cy + dy),
            width=float(rng.uniform(1.4, 2.4)),
        )
    return Defect(defect_type)
