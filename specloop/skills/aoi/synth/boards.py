"""Boards (production lines): solder-mask colour, lighting drift per light, and camera nuisance.

Each line has its own inspection machine, so besides the mask colour it differs in how its two
lights are balanced and in how much a test crop wanders from its golden (misalignment, blur,
noise). The lines that the base training set barely sees are also the noisier ones, which is what
makes an under-trained model raise false alarms there.
"""

from __future__ import annotations

from dataclasses import dataclass

LIGHTS: tuple[str, ...] = ("SolderLight", "UniformLight")


@dataclass(frozen=True)
class Nuisance:
    """How far a PASS test crop of this line may drift from its golden."""

    misalign_px: float  # camera offset magnitude, up to this many pixels
    rotate_deg: float  # component placement rotation jitter
    gain: float  # per-light illumination gain, 1 ± gain
    color_drift: float  # per-channel gain, 1 ± color_drift
    blur_prob: float
    blur_sigma: float  # up to this Gaussian sigma when blurred
    noise_sigma: float  # sensor noise (8-bit levels)
    silk_shift_px: float  # silkscreen print registration error
    silk_fade_prob: float  # a designator or outline printed faint or partly missing


@dataclass(frozen=True)
class Board:
    name: str
    mask_rgb: tuple[int, int, int]  # solder-mask colour under diffuse light
    copper_rgb: tuple[int, int, int]  # mask over copper traces
    light_gain: dict[str, tuple[float, float, float]]  # per light, per channel
    weave_period: float  # glass-weave period in pixels
    weave_angle: float  # radians
    weave_amp: float
    nuisance: Nuisance
    description: str


BOARDS: tuple[Board, ...] = (
    Board(
        name="line1_green",
        mask_rgb=(38, 104, 52),
        copper_rgb=(62, 132, 64),
        light_gain={"SolderLight": (1.0, 1.0, 1.0), "UniformLight": (1.0, 1.0, 1.0)},
        weave_period=5.0,
        weave_angle=0.0,
        weave_amp=0.06,
        nuisance=Nuisance(1.0, 0.6, 0.05, 0.02, 0.15, 0.6, 2.0, 0.5, 0.05),
        description="green solder mask, line 1 (the well-covered main line)",
    ),
    Board(
        name="line2_blue",
        mask_rgb=(30, 62, 128),
        copper_rgb=(48, 88, 150),
        light_gain={"SolderLight": (0.96, 1.0, 1.06), "UniformLight": (0.98, 1.0, 1.04)},
        weave_period=5.5,
        weave_angle=0.35,
        weave_amp=0.06,
        nuisance=Nuisance(1.2, 0.8, 0.06, 0.025, 0.2, 0.7, 2.5, 0.6, 0.08),
        description="blue solder mask, line 2 (well covered)",
    ),
    Board(
        name="line3_black",
        mask_rgb=(30, 30, 34),
        copper_rgb=(48, 48, 52),
        light_gain={"SolderLight": (1.18, 1.12, 1.05), "UniformLight": (1.1, 1.08, 1.06)},
        weave_period=4.5,
        weave_angle=0.78,
        weave_amp=0.12,
        nuisance=Nuisance(2.0, 1.5, 0.12, 0.05, 0.4, 0.9, 4.5, 1.2, 0.25),
        description="matte black solder mask, line 3 (new line, older camera, brighter solder light)",
    ),
    Board(
        name="line4_red",
        mask_rgb=(140, 32, 30),
        copper_rgb=(168, 56, 46),
        light_gain={"SolderLight": (1.08, 0.94, 0.9), "UniformLight": (1.12, 0.96, 0.9)},
        weave_period=6.0,
        weave_angle=1.2,
        weave_amp=0.08,
        nuisance=Nuisance(2.0, 1.5, 0.12, 0.06, 0.45, 0.95, 4.0, 1.2, 0.25),
        description="red solder mask, line 4 (new line, warm lighting drift, looser fixture)",
    ),
)

BOARD_NAMES: tuple[str, ...] = tuple(b.name for b in BOARDS)


def board(name: str) -> Board:
    for b in BOARDS:
        if b.name == name:
            return b
    raise KeyError(name)
