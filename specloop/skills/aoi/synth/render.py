"""Rasterise a scene into per-pixel material coverage, then colour it per light.

Shapes are drawn as material ids at 4x supersampling with PIL; a single bincount turns that map
into the fraction of each material in every output pixel (anti-aliasing and sub-pixel offsets come
for free). Each light is then one small matrix product plus board texture.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from specloop.skills.aoi.synth.boards import Board
from specloop.skills.aoi.synth.components import Placement, Scene, rect
from specloop.skills.aoi.synth.defects import Defect
from specloop.skills.aoi.synth.materials import N_MATS, Mat, palette
from specloop.skills.aoi.synth.nuisance import Pose

SIZE = 64
SS = 3  # supersampling factor
_N = SIZE * SS
_BLOCK = ((np.arange(_N) // SS)[:, None] * SIZE + (np.arange(_N) // SS)[None, :]).ravel() * N_MATS


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=7 * SS)


def _rot(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def rasterize(scene: Scene, p: Placement, pose: Pose, defect: Defect | None = None) -> np.ndarray:
    """(SIZE*SIZE, N_MATS) float32 coverage of each material in each output pixel."""
    orient = _rot(p.orientation)
    centre = np.array([SIZE / 2 + pose.cam[0], SIZE / 2 + pose.cam[1]])
    comp_rot, comp_off = pose.comp_rot, np.array(pose.comp)
    if defect is not None and defect.type == "shift":
        comp_rot += defect.rotation
        comp_off = comp_off + np.array(defect.offset)
    if defect is not None and defect.type == "polarity":
        comp_rot += 180.0
    comp_m = _rot(comp_rot)
    silk_off = centre + np.array(pose.silk)

    def to_px(frame: str, pts: np.ndarray) -> list[tuple[float, float]]:
        if frame == "crop":
            w = pts + np.array(pose.cam)
        elif frame == "comp":
            w = (pts @ comp_m.T + comp_off) @ orient.T + centre
        elif frame == "silk":
            w = pts @ orient.T + silk_off
        else:
            w = pts @ orient.T + centre
        return [(float(x), float(y)) for x, y in w * SS]

    img = Image.new("L", (_N, _N), int(Mat.BOARD))
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1"
    silk_mat = Mat.SILK_FAINT if pose.silk_faint else Mat.SILK
    _designator(draw, scene, p, silk_off, silk_mat, pose.text_cut)
    for s in scene.shapes:
        if s.layer == "board":
            mat = silk_mat if s.mat == Mat.SILK else s.mat
            draw.polygon(to_px(s.frame, s.pts), fill=int(mat))
    solder = [s for s in scene.shapes if s.layer == "solder"]
    if solder:
        layer = Image.new("L", (_N, _N), 0)
        ldraw = ImageDraw.Draw(layer)
        fillet = pose.fillet
        for s in solder:
            pts = s.pts
            if fillet != 1.0:  # solder volume: grow/shrink about the shape's centre along its long side
                c = pts.mean(axis=0)
                pts = c + (pts - c) * fillet
            ldraw.polygon(to_px(s.frame, pts), fill=s.mat)
        base = np.asarray(img)
        sol = np.asarray(layer)
        merged = np.where((sol > 0) & (base == Mat.PAD), sol, base).astype(np.uint8)
        img = Image.fromarray(merged)
        draw = ImageDraw.Draw(img)
    for layer_name in ("top", "overlay"):
        for s in scene.shapes:
            if s.layer == layer_name:
                draw.polygon(to_px(s.frame, s.pts), fill=s.mat)
    ids = np.asarray(img).ravel().astype(np.int64)
    counts = np.bincount(_BLOCK + ids, minlength=SIZE * SIZE * N_MATS)
    return (counts.reshape(SIZE * SIZE, N_MATS) / float(SS * SS)).astype(np.float32)


def _designator(
    draw: ImageDraw.ImageDraw, scene: Scene, p: Placement, silk_off: np.ndarray, mat: int, cut: float
) -> None:
    """Print the reference designator upright above (or below) the outline."""
    hx, hy = scene.silk_half
    if p.orientation % 180 == 90:
        hx, hy = hy, hx
    font = _font()
    x0, y0, x1, y1 = draw.textbbox((0, 0), scene.text, font=font)
    tw, th = (x1 - x0) / SS, (y1 - y0) / SS
    left = silk_off[0] - hx
    top = silk_off[1] - hy - th - 2.0
    if top < 0.5:
        top = silk_off[1] + hy + 2.0
    org = (left * SS - x0, top * SS - y0)
    draw.text(org, scene.text, fill=int(mat), font=font)
    if cut > 0:
        keep = tw * (1 - cut)
        box = rect(left + keep + (tw - keep) / 2, top + th / 2, tw - keep + 0.5, th + 1.0) * SS
        draw.polygon([(float(x), float(y)) for x, y in box], fill=int(Mat.BOARD))


_AXIS = np.arange(SIZE, dtype=np.float32)


def _wave(x: np.ndarray, y: np.ndarray, fx: float, fy: float, phase: float) -> np.ndarray:
    """sin(fx*x + fy*y + phase) on the grid, as two outer products of 1-D vectors (cheap)."""
    return np.outer(np.cos(fy * y + phase), np.sin(fx * x)) + np.outer(np.sin(fy * y + phase), np.cos(fx * x))


def texture(board: Board, key: int, cam: tuple[float, float]) -> np.ndarray:
    """Glass weave through the mask plus low-frequency mottling, fixed to the board (moves with cam)."""
    x, y = _AXIS - np.float32(cam[0]), _AXIS - np.float32(cam[1])
    ca, sa = np.cos(board.weave_angle), np.sin(board.weave_angle)
    k, amp = 2 * np.pi / board.weave_period, board.weave_amp
    # sin(k u) sin(k v) with u, v the weave axes, written as a difference of two plane waves
    weave = (
        0.5
        * amp
        * (
            _wave(x, y, k * (ca + sa), k * (sa - ca), np.pi / 2)
            - _wave(x, y, k * (ca - sa), k * (sa + ca), np.pi / 2)
        )
    )
    weave += 0.5 * amp * _wave(x, y, 0.5 * k * (ca - sa), 0.5 * k * (sa + ca), 0.0)
    rng = np.random.default_rng(key)
    for _ in range(3):
        f = 2 * np.pi * rng.uniform(0.03, 0.12, 2)
        weave += 0.03 * _wave(x, y, f[0], f[1], rng.uniform(0, 2 * np.pi))
    return weave.astype(np.float32)


def colour(coverage: np.ndarray, board: Board, light: str, tex: np.ndarray | None) -> np.ndarray:
    """Float (SIZE, SIZE, 3) image of one light from material coverage."""
    rgb = (coverage @ palette(board.name, light)).reshape(SIZE, SIZE, 3)
    if tex is not None:
        boardish = (coverage[:, Mat.BOARD] + coverage[:, Mat.TRACE]).reshape(SIZE, SIZE)
        rgb = rgb * (1 + boardish * tex)[..., None]
    return rgb
