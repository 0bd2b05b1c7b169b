"""Self-describing checkpoints: weights, the spec they were trained with, backbone, epoch, optimizer.

A checkpoint alone is enough to run inference (`load_model`) or to embed images with the trained
backbone (`load_backbone_features`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from specloop import __version__
from specloop.errors import SpecloopError
from specloop.skills.aoi.spec import ExperimentSpec
from specloop.skills.changenet.model import ChangeNet, build_model, strip_ddp

FORMAT = "specloop.changenet/1"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write atomically (temp name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"format": FORMAT, "specloop_version": __version__, **payload}, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint dict on the CPU. A bare state dict is accepted as {'state_dict': …}."""
    if not path.is_file():
        raise SpecloopError(f"checkpoint {path} does not exist.", rule="checkpoint-missing")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # pickle/zip errors of every kind: the file is not a checkpoint
        raise SpecloopError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}).", rule="checkpoint-format"
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj:
        return obj
    if isinstance(obj, dict) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        return {"state_dict": obj}
    raise SpecloopError(f"checkpoint {path} holds no model state dict.", rule="checkpoint-format")


def load_weights(model: ChangeNet, ckpt: dict[str, Any], path: Path) -> None:
    try:
        model.load_state_dict(strip_ddp(ckpt["state_dict"]))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise SpecloopError(
            f"checkpoint {path} does not fit the spec's model ({first[:160]}).", rule="checkpoint-mismatch"
        ) from None


def checkpoint_spec(ckpt: dict[str, Any], path: Path) -> ExperimentSpec:
    if "spec" not in ckpt:
        raise SpecloopError(
            f"checkpoint {path} carries no spec; pass the spec it was trained with.", rule="checkpoint-spec"
        )
    spec = ExperimentSpec.model_validate(ckpt["spec"])
    # The weights are in the checkpoint; the backbone's initial weight file is not needed again.
    spec.model.backbone.pretrained_backbone_path = None
    return spec


def load_model(checkpoint: Path, device: str | torch.device = "cpu") -> tuple[ChangeNet, ExperimentSpec]:
    """The trained model (eval mode, on `device`) and the spec it was trained with."""
    ckpt = read_checkpoint(checkpoint)
    spec = checkpoint_spec(ckpt, checkpoint)
    model = build_model(spec)
    load_weights(model, ckpt, checkpoint)
    return model.to(device).eval(), spec


def load_backbone_features(
    checkpoint: Path, device: str | torch.device = "cpu"
) -> Callable[[Tensor], Tensor]:
    """A function mapping a normalised (B, 3, H, W) image batch to pooled backbone features (B, C)."""
    model, _ = load_model(checkpoint, device)
    return model.embed
