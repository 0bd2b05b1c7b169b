"""The siamese change classifier: a shared timm backbone and one of TAO's two classify heads.

- `learnable`: for each of the deepest `learnable_difference_modules` feature scales, a learned
  difference block reads golden, test and |golden - test| and reduces them to `embed_dec` channels;
  the blocks' pooled outputs are fused by an MLP into 2 logits. Loss: weighted cross-entropy;
  score: softmax P(defect).
- `euclidean`: a shared MLP maps each side's pooled multi-scale features to `embedding_vectors`
  dims; loss: contrastive with margin `train_margin_euclid`; score: the Euclidean distance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from specloop.errors import SpecloopError
from specloop.skills.aoi.spec import ExperimentSpec
from specloop.skills.changenet.backbones import (
    TAO_BACKBONES,
    VitPyramid,
    build_tao_backbone,
    nearest_supported,
    unsupported_reason,
)


class DifferenceBlock(nn.Module):
    """Learned difference of one scale: [g, t, |g - t|] -> `dim` channels -> avg + max pooled."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3 * channels, dim, 1, bias=False),
            nn.BatchNorm2d(dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 3, padding=1, bias=False),
            nn.BatchNorm2d(dim),
            nn.ReLU(inplace=True),
        )

    def forward(self, g: Tensor, t: Tensor) -> Tensor:
        x = self.body(torch.cat([g, t, (g - t).abs()], dim=1))
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


class ChangeNet(nn.Module):
    """Siamese ChangeNet classifier. `forward(golden, test)` returns logits (B, 2) for the learnable
    head or distances (B,) for the euclidean head; `scores()` turns either into P(defect)/distance."""

    def __init__(
        self,
        backbone: str,
        *,
        difference_module: str = "learnable",
        n_scales: int = 4,
        embed_dec: int = 30,
        embedding_vectors: int = 5,
        pretrained_backbone_path: Path | None = None,
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.difference_module = difference_module
        self.backbone = create_backbone(backbone, pretrained_backbone_path)
        channels = list(self.backbone.feature_info.channels())
        self.n_scales = min(n_scales, len(channels))
        self.channels = channels[-self.n_scales :]
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            frozen = self.backbone.trunk if isinstance(self.backbone, VitPyramid) else self.backbone
            frozen.requires_grad_(False)
            if isinstance(self.backbone, VitPyramid):
                self.backbone.trunk_frozen = True  # its pyramid necks still learn
        if difference_module == "learnable":
            self.diff = nn.ModuleList(DifferenceBlock(c, embed_dec) for c in self.channels)
            fused = 2 * embed_dec * self.n_scales
            self.classifier = nn.Sequential(
                nn.Linear(fused, 128), nn.ReLU(inplace=True), nn.Dropout(0.1), nn.Linear(128, 2)
            )
        elif difference_module == "euclidean":
            self.embedding = nn.Sequential(
                nn.Linear(sum(self.channels), 128), nn.ReLU(inplace=True), nn.Linear(128, embedding_vectors)
            )
        else:
            raise SpecloopError(
                f"model.classify.difference_module {difference_module!r} is not one of learnable, euclidean."
            )

    def train(self, mode: bool = True) -> ChangeNet:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()  # frozen means frozen BatchNorm statistics too
        return self

    def features(self, x: Tensor) -> list[Tensor]:
        """The deepest `n_scales` feature maps of a batch of joined images."""
        if self.freeze_backbone and not isinstance(self.backbone, VitPyramid):
            with torch.no_grad():
                return self.backbone(x)[-self.n_scales :]
        return self.backbone(x)[-self.n_scales :]

    @torch.no_grad()
    def embed(self, x: Tensor) -> Tensor:
        """Pooled deepest backbone features (B, C) of one side's normalised image batch.

        In-domain embeddings for k-NN mining; call on a model in eval mode."""
        return self.backbone(x)[-1].float().mean(dim=(2, 3))

    def head(self, fg: list[Tensor], ft: list[Tensor]) -> Tensor:
        if self.difference_module == "learnable":
            fused = torch.cat([blk(g, t) for blk, g, t in zip(self.diff, fg, ft, strict=True)], dim=1)
            return self.classifier(fused)
        eg = self.embedding(torch.cat([f.mean(dim=(2, 3)) for f in fg], dim=1))
        et = self.embedding(torch.cat([f.mean(dim=(2, 3)) for f in ft], dim=1))
        return F.pairwise_distance(eg, et)

    def forward(self, golden: Tensor, test: Tensor) -> Tensor:
        # One backbone pass over both sides: same weights, half the kernel launches.
        feats = self.features(torch.cat([golden, test], dim=0))
        n = golden.shape[0]
        return self.head([f[:n] for f in feats], [f[n:] for f in feats])

    def scores(self, out: Tensor) -> Tensor:
        """Defect score per pair: softmax P(defect) (learnable) or embedding distance (euclidean)."""
        if self.difference_module == "learnable":
            return out.float().softmax(dim=1)[:, 1]
        return out.float()


class ContrastiveLoss(nn.Module):
    """(1 - y) d^2 + y max(0, margin - d)^2 with y = 1 for a defect (a changed pair)."""

    def __init__(self, margin: float) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, distance: Tensor, labels: Tensor) -> Tensor:
        y = labels.float()
        d = distance.float()
        return ((1 - y) * d.pow(2) + y * (self.margin - d).clamp(min=0).pow(2)).mean()


def create_backbone(name: str, weights: Path | None = None, **arch_overrides: Any) -> nn.Module:
    """A feature-pyramid backbone: a TAO ViT name (`backbones.TAO_BACKBONES`) or any timm model.

    Weights only from a local file, never downloaded. `arch_overrides` go to the TAO ViT's timm
    constructor (tests shrink a ViT with `depth=2`)."""
    reason = unsupported_reason(name)
    if reason is not None:
        raise SpecloopError(reason, rule="unsupported-backbone")
    if name not in TAO_BACKBONES and not timm.is_model(name):
        raise SpecloopError(
            f"model.backbone.type {name!r} is not a timm model name (see timm.list_models()) or a TAO "
            f"backbone; the nearest TAO one is {nearest_supported(name)!r}.",
            rule="unknown-backbone",
        )
    if weights is not None and not weights.is_file():
        raise SpecloopError(
            f"model.backbone.pretrained_backbone_path {weights} does not exist.", rule="backbone-weights"
        )
    try:
        if name in TAO_BACKBONES:
            return build_tao_backbone(name, weights, arch_overrides)
        if weights is None:
            return timm.create_model(name, features_only=True, pretrained=False)
        return timm.create_model(
            name, features_only=True, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights))
        )
    except (RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecloopError(
            f"cannot build backbone {name!r} with features_only=True"
            f"{f' from {weights}' if weights else ''} ({first[:200]}).",
            rule="backbone",
        ) from None


def build_model(spec: ExperimentSpec, root: Path | None = None) -> ChangeNet:
    """The ChangeNet a spec describes (backbone weights resolved against the workspace root)."""
    from specloop.skills.aoi.spec import resolve_path

    bb = spec.model.backbone
    cls = spec.model.classify
    weights = (
        resolve_path(bb.pretrained_backbone_path, root) if root else _opt_path(bb.pretrained_backbone_path)
    )
    return ChangeNet(
        bb.type,
        difference_module=cls.difference_module,
        n_scales=cls.learnable_difference_modules,
        embed_dec=cls.embed_dec,
        embedding_vectors=cls.embedding_vectors,
        pretrained_backbone_path=weights,
        freeze_backbone=bb.freeze_backbone,
    )


def build_loss(spec: ExperimentSpec) -> nn.Module:
    if spec.train.classify.loss == "ce":
        return nn.CrossEntropyLoss(weight=torch.tensor(spec.train.classify.cls_weight, dtype=torch.float32))
    return ContrastiveLoss(spec.model.classify.train_margin_euclid)


def _opt_path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def backbone_note(spec: ExperimentSpec) -> str:
    bb = spec.model.backbone
    if bb.pretrained_backbone_path:
        return f"backbone {bb.type} initialised from {bb.pretrained_backbone_path}"
    return (
        f"backbone {bb.type} starts from random weights (model.backbone.pretrained_backbone_path is not "
        "set; nothing is downloaded)"
    )


def strip_ddp(state: dict[str, Any]) -> dict[str, Any]:
    return {k.removeprefix("module."): v for k, v in state.items()}
