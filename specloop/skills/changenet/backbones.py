"""TAO's ViT backbone names, built as equivalent timm networks with a multi-scale feature pyramid.

TAO's ChangeNet names its backbones (`c_radio_v2_vit_base_patch16_224`, `vit_large_nvdinov2`, …);
timm has the same architectures under its own names: C-RADIO is a ViT whose patch embedding is a
bias-free linear projection, whose position embedding covers only the patches, and which carries
8 prefix tokens (a class token and registers) with no final norm — timm's `*_patch16_radio_v3`
models; NV-DINOv2 is DINOv2's ViT-L/14 (`vit_large_patch14_dinov2`). A ViT has one resolution, so
the learnable head gets TAO's pyramid (feature strides 4, 8, 16, 16) from four evenly spaced blocks:
two transposed convolutions, one, none, none.

Weights come only from the file `model.backbone.pretrained_backbone_path` names: RADIO's
`.pth(.tar)` (`state_dict`/`state_dict_ema`, keys under `base_model.`), the Hugging Face
`model.safetensors` (keys under `radio_model.model.`), DINOv2's own `.pth`, or a timm state dict;
timm's checkpoint filter maps them onto its ViT and resamples the position grid.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import Tensor, nn

from specloop.errors import SpecloopError

PYRAMID_STRIDES = (4, 8, 16, 16)  # TAO's decode_head.feature_strides for its ViT backbones


@dataclass(frozen=True)
class TaoBackbone:
    """One TAO backbone name and the timm network that is its equivalent here."""

    name: str
    timm_name: str
    weights: str  # the weight files it loads, for the docs table
    arch: dict[str, Any] = field(default_factory=dict)


def _declare(*items: TaoBackbone) -> dict[str, TaoBackbone]:
    return {b.name: b for b in items}


_RADIO_FILES = "RADIO `.pth`/`.pth.tar` (e.g. `C-RADIOv2_B.pth`) or HF `model.safetensors`"

TAO_BACKBONES: dict[str, TaoBackbone] = _declare(
    TaoBackbone("c_radio_v2_vit_base_patch16_224", "vit_base_patch16_radio_v3", _RADIO_FILES),
    TaoBackbone("c_radio_v2_vit_large_patch16_224", "vit_large_patch16_radio_v3", _RADIO_FILES),
    TaoBackbone("c_radio_v2_vit_huge_patch16_224", "vit_huge_patch16_radio_v3", _RADIO_FILES),
    *(
        TaoBackbone(
            f"c_radio_p{i}_vit_huge_patch16_224_mlpnorm",
            "vit_huge_patch16_radio_v3",
            _RADIO_FILES,
            {"scale_mlp_norm": True},
        )
        for i in (1, 2, 3)
    ),
    TaoBackbone(
        "vit_large_nvdinov2", "vit_large_patch14_dinov2", "DINOv2 `.pth` (`blocks.*`, `mask_token`) or timm"
    ),
)

# TAO backbones with no equivalent network here, by name prefix, and what to use instead.
UNSUPPORTED: dict[str, str] = {"fan_": "c_radio_v2_vit_base_patch16_224"}


def nearest_supported(name: str) -> str:
    """The supported TAO name to suggest for `name` (FAN: a C-RADIO of similar size)."""
    if name.startswith("fan_"):
        return "c_radio_v2_vit_large_patch16_224" if "large" in name else UNSUPPORTED["fan_"]
    close = difflib.get_close_matches(name, list(TAO_BACKBONES), n=1, cutoff=0.0)
    return close[0]


def unsupported_reason(name: str) -> str | None:
    """One sentence when `name` is a TAO backbone this package cannot build, else None."""
    if not any(name.startswith(prefix) for prefix in UNSUPPORTED):
        return None
    return (
        f"model.backbone.type {name!r} is a TAO FAN backbone, which has no equivalent network here; "
        f"use {nearest_supported(name)!r} (supported: {', '.join(TAO_BACKBONES)})."
    )


class PyramidInfo:
    """The slice of timm's `feature_info` ChangeNet reads: channels and reductions per level."""

    def __init__(self, channels: Sequence[int], reductions: Sequence[float]) -> None:
        self._channels, self._reductions = list(channels), list(reductions)

    def channels(self) -> list[int]:
        return list(self._channels)

    def reduction(self) -> list[float]:
        return list(self._reductions)


def _neck(dim: int, up: int) -> nn.Module:
    """Upsample one block's patch map by `up` (4, 2 or 1) with transposed convolutions."""
    if up == 1:
        return nn.Identity()
    layers: list[nn.Module] = []
    while up > 1:
        layers += [nn.ConvTranspose2d(dim, dim, 2, stride=2), nn.GELU()]
        up //= 2
    return nn.Sequential(*layers[:-1])


class VitPyramid(nn.Module):
    """A timm ViT and necks that turn four of its blocks into TAO's 4-level feature pyramid."""

    def __init__(self, trunk: VisionTransformer, out_indices: Sequence[int]) -> None:
        super().__init__()
        self.trunk = trunk
        self.out_indices = list(out_indices)
        dim = trunk.embed_dim
        patch = trunk.patch_embed.patch_size[0]
        ups = [max(1, 16 // s) for s in PYRAMID_STRIDES]
        self.necks = nn.ModuleList(_neck(dim, up) for up in ups)
        self.feature_info = PyramidInfo([dim] * len(ups), [patch / up for up in ups])
        self.trunk_frozen = False

    def forward(self, x: Tensor) -> list[Tensor]:
        with torch.no_grad() if self.trunk_frozen else nullcontext():
            maps = self.trunk.forward_intermediates(
                x, indices=self.out_indices, output_fmt="NCHW", intermediates_only=True
            )
        return [neck(m) for neck, m in zip(self.necks, maps, strict=True)]


def pyramid_blocks(depth: int) -> list[int]:
    """Four evenly spaced blocks, the last one included (12 blocks -> 2, 5, 8, 11)."""
    return [depth * (i + 1) // 4 - 1 for i in range(4)]


def build_tao_backbone(
    name: str, weights: Path | None = None, arch_overrides: dict[str, Any] | None = None
) -> VitPyramid:
    """The network TAO's `name` denotes, from random weights or the user's staged file.

    `arch_overrides` (e.g. `depth=2`) changes the timm arguments: tests use it to keep a ViT small."""
    entry = TAO_BACKBONES[name]
    kwargs: dict[str, Any] = {
        "pretrained": False,
        "num_classes": 0,
        "dynamic_img_size": True,
        "dynamic_img_pad": True,
        **({"img_size": 224} if "radio" in entry.timm_name else {}),
        **entry.arch,
        **(arch_overrides or {}),
    }
    trunk = timm.create_model(entry.timm_name, **kwargs)
    if weights is not None:
        load_trunk_weights(trunk, weights, name)
    return VitPyramid(trunk, pyramid_blocks(len(trunk.blocks)))


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors of a `.safetensors` or torch file, unwrapped from the usual nestings."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            with torch.serialization.safe_globals([argparse.Namespace]):  # RADIO keeps its args
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt, foreign or truncated file: one sentence, not a traceback
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise SpecloopError(
            f"model.backbone.pretrained_backbone_path {path} is not a readable weight file ({first}).",
            rule="backbone-weights",
        ) from None
    for key in ("state_dict_ema", "state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise SpecloopError(
            f"model.backbone.pretrained_backbone_path {path} holds no state dict.", rule="backbone-weights"
        )
    return {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}


def to_timm_layout(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Put RADIO keys under the prefix timm's converter expects; strip wrappers' prefixes elsewhere."""
    radio = [k for k in state if k.endswith("patch_generator.embedder.weight")]
    if radio:
        prefix = radio[0].removesuffix("patch_generator.embedder.weight")
        return {"radio_model.model." + k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    anchors = [k for k in state if k.endswith("blocks.0.norm1.weight")]
    if not anchors:
        return state
    prefix = anchors[0].removesuffix("blocks.0.norm1.weight")
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


_IGNORED = ("head.", "fc_norm.")


def load_trunk_weights(trunk: VisionTransformer, path: Path, name: str) -> None:
    """Load the user's file into `trunk`; anything but an exact fit is one sentence naming a key.

    A checkpoint without layer-scale factors gets factors of 1, which is the same network."""
    state = checkpoint_filter_fn(to_timm_layout(read_state_dict(path)), trunk)
    try:
        result = trunk.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        detail = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), str(exc)[:200])
        raise SpecloopError(
            f"model.backbone.pretrained_backbone_path {path} does not fit {name} ({detail}).",
            rule="backbone-weights",
        ) from None
    missing = [k for k in result.missing_keys if not k.endswith((".ls1.gamma", ".ls2.gamma"))]
    unexpected = [k for k in result.unexpected_keys if not k.startswith(_IGNORED)]
    if missing or unexpected:
        what = f"missing key {missing[0]}" if missing else f"unexpected key {unexpected[0]}"
        raise SpecloopError(
            f"model.backbone.pretrained_backbone_path {path} is not a {name} checkpoint ({what}).",
            rule="backbone-weights",
        )
    with torch.no_grad():
        for key in result.missing_keys:
            if key not in missing:
                trunk.get_parameter(key).fill_(1.0)
