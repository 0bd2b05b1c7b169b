"""Nuisance variation between a test crop and its golden: what a good part may look like.

Geometry (camera misalignment, placement jitter, silkscreen registration, solder volume) is
applied while rasterising; photometry (illumination gain, colour drift, lighting gradient, blur,
sensor noise) afterwards, per light.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from specloop.skills.aoi.synth.boards import LIGHTS, Board


@dataclass(frozen=True)
class Pose:
    cam: tuple[float, float] = (0.0, 0.0)  # whole-crop offset, px
    comp: tuple[float, float] = (0.0, 0.0)  # placement offset of the component, px
    comp_rot: float = 0.0  # degrees
    silk: tuple[float, float] = (0.0, 0.0)  # legend registration offset, px
    silk_faint: bool = False
    text_cut: float = 0.0  # fraction of the designator missing from the right
    fillet: float = 1.0  # solder volume factor


@dataclass(frozen=True)
class Photometric:
    gain: dict[str, float]
    drift: dict[str, tuple[float, float, float]]
    gradient: tuple[float, float] = (0.0, 0.0)  # strength, angle (radians)
    blur: float = 0.0  # Gaussian radius, 0 for none
    noise: float = 0.0  # sensor noise sigma, 8-bit levels


GOLDEN_POSE = Pose()


def golden_photometric(board: Board) -> Photometric:
    """The golden board's capture: the line's own lighting, light noise, no blur."""
    return Photometric(
        gain=dict.fromkeys(LIGHTS, 1.0),
        drift=dict.fromkeys(LIGHTS, (1.0, 1.0, 1.0)),
        noise=0.6 * board.nuisance.noise_sigma,
    )


def sample_pose(board: Board, rng: np.random.Generator) -> Pose:
    nz = board.nuisance
    r = nz.misalign_px * np.sqrt(rng.uniform(0.05, 1.0))
    a = rng.uniform(0, 2 * np.pi)
    faint = bool(rng.random() < nz.silk_fade_prob)
    return Pose(
        cam=(float(r * np.cos(a)), float(r * np.sin(a))),
        comp=(float(rng.normal(0, 0.35)), float(rng.normal(0, 0.35))),
        comp_rot=float(rng.uniform(-nz.rotate_deg, nz.rotate_deg)),
        silk=tuple(float(v) for v in rng.uniform(-nz.silk_shift_px, nz.silk_shift_px, size=2)),
        silk_faint=faint,
        text_cut=float(rng.uniform(0.3, 0.7)) if faint and rng.random() < 0.5 else 0.0,
        fillet=float(rng.uniform(0.8, 1.25)),
    )


def sample_photometric(board: Board, rng: np.random.Generator) -> Photometric:
    nz = board.nuisance
    gain = {light: float(1 + rng.uniform(-nz.gain, nz.gain)) for light in LIGHTS}
    drift = {
        light: tuple(float(v) for v in 1 + rng.uniform(-nz.color_drift, nz.color_drift, 3))
        for light in LIGHTS
    }
    blur = float(rng.uniform(0.4, nz.blur_sigma)) if rng.random() < nz.blur_prob else 0.0
    return Photometric(
        gain=gain,
        drift=drift,
        gradient=(float(rng.uniform(0, 1.5 * nz.gain)), float(rng.uniform(0, 2 * np.pi))),
        blur=blur,
        noise=float(nz.noise_sigma * rng.uniform(0.7, 1.3)),
    )


_YY, _XX = np.mgrid[0:64, 0:64].astype(np.float32) / 63.0 - 0.5


def apply_photometric(rgb: np.ndarray, ph: Photometric, light: str, rng: np.random.Generator) -> np.ndarray:
    """Float HxWx3 in 8-bit range -> uint8 capture with gain, drift, gradient, blur and noise."""
    out = rgb * (ph.gain[light] * np.asarray(ph.drift[light], dtype=np.float32)).astype(np.float32)
    strength, angle = ph.gradient
    if strength:
        out = out * (1 + strength * (np.cos(angle) * _XX + np.sin(angle) * _YY))[..., None]
    img = np.clip(out, 0, 255).astype(np.uint8)
    if ph.blur > 0:
        img = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(ph.blur)))
    if ph.noise > 0:
        noisy = img + np.float32(ph.noise) * rng.standard_normal(img.shape, dtype=np.float32)
        img = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return img
