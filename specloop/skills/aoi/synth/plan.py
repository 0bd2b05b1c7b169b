"""What goes in each split: sizes, board and defect mixes, and the rows they expand to.

The base set (training + validation) comes mostly from the two established lines and rarely or
never shows tombstone, polarity and scratch defects; KPI and holdout sample every line and every
defect type evenly; the mining pool is production data several times the training size that leans
towards the new lines; the pre-generated synthetic pool leans towards the defect types the base
set lacks. Counts are apportioned exactly (not sampled) so coverage holds at every size and seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specloop.skills.aoi.synth.boards import BOARD_NAMES
from specloop.skills.aoi.synth.components import Placement
from specloop.skills.aoi.synth.defects import APPLIES_TO, DEFECT_TYPES

PASS = "PASS"


@dataclass(frozen=True)
class SizePlan:
    training: int
    validation: int
    kpi: int
    holdout: int
    mining_pool: int
    anomalygen: int
    positions_per_board: int

    def rows(self, split: str) -> int:
        return int(getattr(self, split))


SIZES: dict[str, SizePlan] = {
    "tiny": SizePlan(96, 32, 64, 64, 256, 32, 8),
    "small": SizePlan(600, 160, 400, 400, 2400, 240, 16),
    "medium": SizePlan(2400, 640, 1600, 1600, 9600, 960, 24),
}

SPLITS: tuple[str, ...] = ("training", "validation", "kpi", "holdout", "mining_pool", "anomalygen")


@dataclass(frozen=True)
class Mix:
    boards: dict[str, float]
    defect_fraction: float
    defects: dict[str, float]


_EVEN_BOARDS = dict.fromkeys(BOARD_NAMES, 1.0)
_EVEN_DEFECTS = dict.fromkeys(DEFECT_TYPES, 1.0)
_BASE = Mix(
    boards={"line1_green": 0.47, "line2_blue": 0.47, "line3_black": 0.03, "line4_red": 0.03},
    defect_fraction=0.3,
    defects={"missing": 0.26, "shift": 0.26, "tombstone": 0.04, "bridge": 0.18, "excess_solder": 0.26},
)
MIXES: dict[str, Mix] = {
    "training": _BASE,
    "validation": _BASE,
    "kpi": Mix(_EVEN_BOARDS, 0.3, _EVEN_DEFECTS),
    "holdout": Mix(_EVEN_BOARDS, 0.3, _EVEN_DEFECTS),
    "mining_pool": Mix(
        {"line1_green": 0.2, "line2_blue": 0.2, "line3_black": 0.3, "line4_red": 0.3}, 0.3, _EVEN_DEFECTS
    ),
    "anomalygen": Mix(
        _EVEN_BOARDS,
        1.0,
        {
            "missing": 0.1,
            "shift": 0.1,
            "tombstone": 0.2,
            "bridge": 0.1,
            "excess_solder": 0.1,
            "polarity": 0.2,
            "scratch": 0.2,
        },
    ),
}

# Serial numbers are disjoint per split, so object names never collide across splits.
SERIAL_BASE: dict[str, int] = {split: 100_000 * (i + 1) for i, split in enumerate(SPLITS)}


@dataclass(frozen=True)
class RowPlan:
    split: str
    index: int
    board: str
    label: str
    placement: Placement
    serial: int

    @property
    def object_name(self) -> str:
        return f"{self.board}_{self.serial:06d}_{self.placement.comp_name}"


def apportion(n: int, weights: dict[str, float]) -> dict[str, int]:
    """Split `n` over the keys by weight, largest remainder first (ties in key order)."""
    keys = [k for k, w in weights.items() if w > 0]
    w = np.array([weights[k] for k in keys], dtype=np.float64)
    exact = n * w / w.sum()
    base = np.floor(exact).astype(int)
    order = sorted(range(len(keys)), key=lambda i: (-(exact[i] - base[i]), i))
    for i in order[: n - int(base.sum())]:
        base[i] += 1
    return {k: int(c) for k, c in zip(keys, base, strict=True)}


def plan_split(
    split: str, n: int, positions: dict[str, list[Placement]], rng: np.random.Generator
) -> list[RowPlan]:
    """The rows of one split, in a shuffled but seed-determined order."""
    mix = MIXES[split]
    n_defect = round(n * mix.defect_fraction)
    labels = [PASS] * (n - n_defect)
    boards: list[str] = []
    for name, count in apportion(n - n_defect, mix.boards).items():
        boards += [name] * count
    # Each defect type is spread over the boards on its own, starting from a different board so
    # rounding does not always favour the same one.
    board_keys = list(mix.boards)
    for j, (dtype, count) in enumerate(apportion(n_defect, mix.defects).items()):
        rotated = board_keys[j % len(board_keys) :] + board_keys[: j % len(board_keys)]
        for name, c in apportion(count, {b: mix.boards[b] for b in rotated}).items():
            labels += [dtype] * c
            boards += [name] * c
    order = rng.permutation(n)
    rows: list[RowPlan] = []
    for out_index, i in enumerate(order):
        label, board_name = labels[i], boards[i]
        kinds = APPLIES_TO.get(label)
        choices = [p for p in positions[board_name] if kinds is None or p.kind in kinds]
        placement = choices[int(rng.integers(len(choices)))]
        rows.append(RowPlan(split, out_index, board_name, label, placement, SERIAL_BASE[split] + out_index))
    return rows
