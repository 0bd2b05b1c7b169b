"""One sample's pictures: the golden of a position, a test crop, a pre-generated pair — as PNG bytes."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from specloop.skills.aoi.synth.boards import LIGHTS, board
from specloop.skills.aoi.synth.components import Placement, build_scene
from specloop.skills.aoi.synth.defects import sample_defect
from specloop.skills.aoi.synth.nuisance import (
    GOLDEN_POSE,
    apply_photometric,
    golden_photometric,
    sample_photometric,
    sample_pose,
)
from specloop.skills.aoi.synth.plan import PASS
from specloop.skills.aoi.synth.render import colour, rasterize, texture

Pictures = dict[str, bytes]  # light -> PNG bytes


def png_bytes(img: np.ndarray) -> bytes:
    """Encode with fixed parameters so the same pixels always give the same bytes."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def golden(board_name: str, p: Placement, texture_key: int, rng: np.random.Generator) -> Pictures:
    b = board(board_name)
    coverage = rasterize(build_scene(p), p, GOLDEN_POSE)
    tex = texture(b, texture_key, GOLDEN_POSE.cam)
    ph = golden_photometric(b)
    return {
        light: png_bytes(apply_photometric(colour(coverage, b, light, tex), ph, light, rng))
        for light in LIGHTS
    }


def production_crop(
    board_name: str, p: Placement, label: str, texture_key: int, rng: np.random.Generator
) -> Pictures:
    """A production capture: nuisance always, the defect when `label` is not PASS."""
    b = board(board_name)
    pose = sample_pose(b, rng)
    ph = sample_photometric(b, rng)
    defect = None if label == PASS else sample_defect(p.kind, label, rng)
    coverage = rasterize(build_scene(p, defect), p, pose, defect)
    tex = texture(b, texture_key, pose.cam)
    return {
        light: png_bytes(apply_photometric(colour(coverage, b, light, tex), ph, light, rng))
        for light in LIGHTS
    }


def synthetic_pair(
    board_name: str, p: Placement, label: str, texture_key: int, rng: np.random.Generator
) -> tuple[Pictures, Pictures]:
    """(OK original, NG reconstruction) the way AnomalyGen makes them: a production capture of a good
    part, and the same capture (pose, lighting, texture, sensor noise) with a defect generated into
    it. So a pair can be as near a weak KPI sample as a real pool row, and k-NN decides which is."""
    b = board(board_name)
    pose = sample_pose(b, rng)
    ph = sample_photometric(b, rng)
    defect = sample_defect(p.kind, label, rng)
    tex = texture(b, texture_key, pose.cam)
    noise_seed = int(rng.integers(2**32))
    pictures = []
    for coverage in (rasterize(build_scene(p), p, pose), rasterize(build_scene(p, defect), p, pose, defect)):
        noise = np.random.default_rng(noise_seed)  # the same sensor noise on both sides
        pictures.append(
            {
                light: png_bytes(apply_photometric(colour(coverage, b, light, tex), ph, light, noise))
                for light in LIGHTS
            }
        )
    ok, ng = pictures
    return ok, ng


@dataclass(frozen=True)
class Job:
    """One row to render; everything a worker process needs, and nothing that depends on order."""

    board: str
    placement: Placement
    label: str
    texture_key: int
    rng_key: tuple[int, ...]
    synthetic: bool = False


def render(job: Job) -> tuple[Pictures, Pictures | None]:
    """(test or NG pictures, OK pictures for a pre-generated pair else None)."""
    rng = np.random.default_rng(list(job.rng_key))
    if job.synthetic:
        ok, ng = synthetic_pair(job.board, job.placement, job.label, job.texture_key, rng)
        return ng, ok
    return production_crop(job.board, job.placement, job.label, job.texture_key, rng), None


def render_many(jobs: list[Job]) -> list[tuple[Pictures, Pictures | None]]:
    return [render(j) for j in jobs]
