"""Does the plan a spec describes run here? Checked before anything trains, so a failure is one
sentence at pre-flight instead of an error after approval.

The model is built on the meta device (shapes only, no memory, no weights) and given one joined
input at the spec's resolution; a backbone that does not build or an image size it cannot take
fails here. Weights named by `pretrained_backbone_path` are loaded for real, on the CPU. On a CUDA
device one training step at the spec's batch size measures what the batch needs; on a CPU that is
not measured (a note says so).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from specloop.errors import SpecloopError
from specloop.skills.aoi.images import grid_shape
from specloop.skills.aoi.problems import Problem
from specloop.skills.aoi.spec import ExperimentSpec, ModelConfig, resolve_path

# The learnable head's four scales reach stride 32: a side that is not a multiple of 32 loses rows.
LEARNABLE_STRIDE = 32


def joined_size(spec: ExperimentSpec) -> tuple[int, int]:
    """(width, height) of one side's lights joined as the spec says (linear: stacked vertically)."""
    ds = spec.dataset.classify
    n = max(len(spec.lights()), 1)
    if n == 1:
        return ds.image_width, ds.image_height
    if ds.concat_type in (None, "linear"):
        return ds.image_width, ds.image_height * n
    cols, rows = grid_shape(n, ds.grid_map)
    return ds.image_width * cols, ds.image_height * rows


def resolved_device(spec: ExperimentSpec) -> str:
    """The device training will use: `auto` is CUDA when there is one."""
    wanted = spec.train.device
    return "cuda" if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()) else "cpu"


def check_plan(
    spec: ExperimentSpec, root: Path, file: str, *, epochs: tuple[int, ...] | None = None
) -> list[Problem]:
    """Every reason the spec's model cannot train here, one Problem each; `epochs` are the epoch
    counts the run will train with (default: the spec's `train.num_epochs`)."""
    problems = []
    interval = spec.train.checkpoint_interval
    for n in epochs or (spec.train.num_epochs,):
        if interval > n:
            problems.append(
                Problem(
                    file,
                    "checkpoint-interval",
                    f"train.checkpoint_interval {interval} is more than the {n} epoch(s) to train, so no "
                    "epoch checkpoint would be written; lower it or train longer",
                )
            )
            break
    if spec.train.device == "cuda" and not torch.cuda.is_available():
        problems.append(
            Problem(
                file,
                "device",
                "train.device is cuda but this machine has no CUDA device (torch.cuda.is_available() is "
                "False); set train.device to auto or cpu",
            )
        )
    model, problem = _build(spec, root, file)
    if problem is not None:
        return [*problems, problem]
    problems.extend(_size_problems(spec, model, file))
    if resolved_device(spec) == "cpu":
        problems.append(
            Problem(
                file,
                "batch-memory",
                "the batch's memory is not measured on a CPU (only a CUDA device runs a trial step)",
                "note",
            )
        )
    elif not problems:
        problems.extend(_batch_memory(spec, root, file))
    return problems


def _build(spec: ExperimentSpec, root: Path, file: str) -> tuple[nn.Module | None, Problem | None]:
    from specloop.skills.changenet.model import build_model

    bb = spec.model.backbone
    weights = resolve_path(bb.pretrained_backbone_path, root)
    if weights is not None and not weights.is_file():
        what = "is a folder, not a weights file" if weights.is_dir() else "does not exist"
        return None, Problem(
            file, "backbone-weights", f"model.backbone.pretrained_backbone_path {weights} {what}"
        )
    try:
        if weights is not None:  # real weights: load them on the CPU, as training will
            build_model(spec, root)
        with torch.device("meta"):
            return build_model(spec.model_copy(update={"model": _without_weights(spec)}), root), None
    except SpecloopError as exc:
        return None, Problem(file, exc.rule, exc.message.rstrip("."))
    except Exception as exc:  # a backbone's own constructor failing: still one sentence
        return None, Problem(
            file, "backbone", f"model.backbone.type {bb.type!r} does not build ({_first_line(exc)})"
        )


def _without_weights(spec: ExperimentSpec) -> ModelConfig:
    """The spec's model section with no weights file: a meta-device build has nowhere to load them."""
    backbone = spec.model.backbone.model_copy(update={"pretrained_backbone_path": None})
    return spec.model.model_copy(update={"backbone": backbone})


def _patch_size(model: nn.Module) -> int | None:
    """The patch size of a ViT backbone, or None for a convolutional one."""
    for module in model.modules():
        embed = getattr(module, "patch_embed", None)
        size = getattr(embed, "patch_size", None)
        if size is not None:
            return int(size[0] if isinstance(size, tuple | list) else size)
    return None


def _size_problems(spec: ExperimentSpec, model: nn.Module, file: str) -> list[Problem]:
    ds = spec.dataset.classify
    width, height = joined_size(spec)
    patch = _patch_size(model)
    name = spec.model.backbone.type
    if patch is not None and width != height:
        return [
            Problem(
                file,
                "image-size",
                f"ViT backbone {name} needs a square input but the joined lights make {width}x{height} px; "
                "use dataset.classify.concat_type grid with a grid_map that makes it square, or change "
                "image_width/image_height",
            )
        ]
    if patch is None and spec.model.classify.difference_module == "learnable":
        sides = (("image_width", ds.image_width), ("image_height", ds.image_height))
        bad = [f"{key} {value}" for key, value in sides if value % LEARNABLE_STRIDE]
        if bad:
            return [
                Problem(
                    file,
                    "image-size",
                    f"dataset.classify.{' and '.join(bad)} must be a multiple of {LEARNABLE_STRIDE} for the "
                    f"learnable head on {name}",
                )
            ]
    try:
        with torch.device("meta"), torch.no_grad():
            x = torch.empty(1, 3, height, width)
            model.eval()(x, x)
    except Exception as exc:
        return [
            Problem(
                file,
                "image-size",
                f"backbone {name} cannot take the joined {width}x{height} px input ({_first_line(exc)})",
            )
        ]
    return []


def _batch_memory(spec: ExperimentSpec, root: Path, file: str) -> list[Problem]:
    """One forward and backward pass at the spec's batch size on the GPU; out of memory → a Problem."""
    from specloop.skills.changenet.model import build_loss, build_model

    batch = spec.dataset.classify.batch_size
    width, height = joined_size(spec)

    def step() -> None:
        model = build_model(spec, root).cuda().train()
        x = torch.zeros(batch, 3, height, width, device="cuda")
        labels = torch.zeros(batch, dtype=torch.long, device="cuda")
        build_loss(spec).cuda()(model(x, x), labels).backward()
        torch.cuda.synchronize()

    try:
        step()
    except torch.cuda.OutOfMemoryError:
        total = torch.cuda.mem_get_info()[1]
        return [
            Problem(
                file,
                "batch-memory",
                f"dataset.classify.batch_size {batch} at {width}x{height} px does not fit in the GPU's "
                f"{total / 2**30:.0f} GiB (one training step ran out of memory); lower the batch size",
            )
        ]
    finally:
        torch.cuda.empty_cache()
    return []


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
