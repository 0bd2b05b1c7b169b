"""Surface materials of a PCB crop and their colour under each light.

A scene is rasterised into a map of material ids; each light then turns material coverage into
colour. Solder light is a low-angle ring: sloped solder (fillets, lead knees) shines, flat surfaces
and bodies go dark. Uniform light is coaxial and diffuse: flat surfaces are bright, slopes dark,
and silkscreen and body markings are plainly visible.
"""

from __future__ import annotations

from enum import IntEnum
from functools import lru_cache

import numpy as np

from specloop.skills.aoi.synth.boards import Board, board


class Mat(IntEnum):
    BOARD = 0
    TRACE = 1
    PAD = 2
    SOLDER_FLAT = 3
    SOLDER_LOW = 4
    SOLDER_HIGH = 5
    TERMINAL = 6
    TERMINAL_FACE = 7
    BODY_R = 8
    BODY_C = 9
    BODY_IC = 10
    BODY_D = 11
    MARKING = 12
    BAND = 13
    PIN = 14
    PIN_BEND = 15
    PIN1 = 16
    SILK = 17
    SILK_FAINT = 18
    SCRATCH = 19
    VIA = 20


N_MATS = len(Mat)

# Colours that do not depend on the board. BOARD, TRACE and SILK_FAINT are filled per board.
_UNIFORM: dict[Mat, tuple[int, int, int]] = {
    Mat.PAD: (198, 162, 92),
    Mat.SOLDER_FLAT: (212, 212, 206),
    Mat.SOLDER_LOW: (150, 150, 148),
    Mat.SOLDER_HIGH: (72, 72, 76),
    Mat.TERMINAL: (188, 188, 182),
    Mat.TERMINAL_FACE: (226, 226, 220),
    Mat.BODY_R: (30, 30, 32),
    Mat.BODY_C: (178, 146, 100),
    Mat.BODY_IC: (46, 46, 50),
    Mat.BODY_D: (26, 26, 28),
    Mat.MARKING: (178, 178, 172),
    Mat.BAND: (205, 205, 198),
    Mat.PIN: (196, 196, 190),
    Mat.PIN_BEND: (118, 118, 116),
    Mat.PIN1: (14, 14, 16),
    Mat.SILK: (238, 238, 230),
    Mat.SCRATCH: (214, 150, 92),
    Mat.VIA: (120, 110, 80),
}
_SOLDER: dict[Mat, tuple[int, int, int]] = {
    Mat.PAD: (92, 78, 48),
    Mat.SOLDER_FLAT: (72, 72, 78),
    Mat.SOLDER_LOW: (178, 182, 190),
    Mat.SOLDER_HIGH: (246, 246, 252),
    Mat.TERMINAL: (108, 108, 106),
    Mat.TERMINAL_FACE: (96, 96, 96),
    Mat.BODY_R: (12, 12, 14),
    Mat.BODY_C: (82, 66, 46),
    Mat.BODY_IC: (18, 18, 20),
    Mat.BODY_D: (12, 12, 13),
    Mat.MARKING: (36, 36, 36),
    Mat.BAND: (64, 64, 64),
    Mat.PIN: (96, 96, 98),
    Mat.PIN_BEND: (236, 236, 242),
    Mat.PIN1: (44, 44, 46),
    Mat.SILK: (84, 84, 80),
    Mat.SCRATCH: (236, 226, 206),
    Mat.VIA: (110, 110, 104),
}
# How dark the mask and traces look under each light, relative to the mask colour.
_MASK_LEVEL = {"SolderLight": 0.38, "UniformLight": 1.0}


@lru_cache(maxsize=64)
def palette(board_name: str, light: str) -> np.ndarray:
    """(N_MATS, 3) float32 colours of every material for one board and light."""
    b: Board = board(board_name)
    table = _SOLDER if light == "SolderLight" else _UNIFORM
    pal = np.zeros((N_MATS, 3), dtype=np.float64)
    for mat, rgb in table.items():
        pal[mat] = rgb
    level = _MASK_LEVEL[light]
    pal[Mat.BOARD] = np.array(b.mask_rgb) * level
    pal[Mat.TRACE] = np.array(b.copper_rgb) * level
    pal[Mat.SILK_FAINT] = 0.45 * pal[Mat.SILK] + 0.55 * pal[Mat.BOARD]
    pal = pal * np.array(b.light_gain[light])
    return np.clip(pal, 0, 255).astype(np.float32)
