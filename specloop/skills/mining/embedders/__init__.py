"""Image embedders for mining: `siglip`, `timm:<name>[@<weights>]`, `changenet:<checkpoint>`, `pixels`.

`get_embedder` builds one from its spec string; `resolve_embedder` says which one can actually
run here (SigLIP when its weights are present, else a ChangeNet checkpoint's backbone, else the
pixel baseline) and why, in one sentence the caller shows the user.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

from specloop.errors import SpecloopError
from specloop.skills.mining.embedders.base import Embedder, LightsJoin, l2_normalise
from specloop.skills.mining.embedders.pixels import PixelEmbedder
from specloop.skills.mining.embedders.siglip import DEFAULT_SIGLIP_ID, SiglipNotFound, find_siglip

__all__ = [
    "DEFAULT_SIGLIP_ID",
    "Embedder",
    "LightsJoin",
    "PixelEmbedder",
    "SiglipNotFound",
    "check_embedder",
    "find_siglip",
    "get_embedder",
    "l2_normalise",
    "resolve_embedder",
]

EMBEDDER_HELP = "siglip, timm:<name>[@<weights file>], changenet:<checkpoint>, or pixels"


def _split_at(value: str) -> tuple[str, Path | None]:
    name, sep, weights = value.partition("@")
    return name, (Path(weights).expanduser() if sep and weights else None)


def get_embedder(
    spec_name: str,
    *,
    lights_join: tuple[str | None, Mapping[str, int] | None] = ("linear", None),
    device: str = "auto",
    siglip_path: Path | None = None,
    progress: bool = True,
) -> Embedder:
    """Build the embedder named by `spec_name` (see EMBEDDER_HELP). Raises SpecloopError when it cannot."""
    join = LightsJoin(*lights_join)
    kind, _, arg = spec_name.partition(":")
    if spec_name == "pixels":
        return PixelEmbedder(join, progress=progress)
    if kind == "siglip":
        from specloop.skills.mining.embedders.siglip import SiglipEmbedder

        model_id = arg or DEFAULT_SIGLIP_ID
        return SiglipEmbedder(
            join, siglip_path=siglip_path, model_id=model_id, device=device, progress=progress
        )
    if kind == "timm" and arg:
        from specloop.skills.mining.embedders.timm_features import TimmEmbedder

        name, weights = _split_at(arg)
        return TimmEmbedder(name, join, weights=weights, device=device, progress=progress)
    if kind == "changenet" and arg:
        from specloop.skills.mining.embedders.changenet_features import ChangeNetEmbedder

        return ChangeNetEmbedder(Path(arg).expanduser(), join, device=device, progress=progress)
    raise SpecloopError(f"unknown embedder {spec_name!r}; use {EMBEDDER_HELP}.")


def resolve_embedder(
    preferred: str = "siglip",
    *,
    fallback_checkpoint: Path | None = None,
    siglip_path: Path | None = None,
) -> tuple[str, str]:
    """The embedder spec that can run here, and one sentence saying why it was chosen.

    Only `siglip` falls back (to `changenet:<fallback_checkpoint>` when that file exists, else to
    `pixels`); any other preference is returned as given, after checking its files exist.
    """
    kind, _, arg = preferred.partition(":")
    if kind == "siglip":
        try:
            folder, _ = find_siglip(siglip_path, arg or DEFAULT_SIGLIP_ID)
        except SiglipNotFound as exc:
            missing = f"SigLIP weights not found in {', '.join(exc.looked)}"
            if fallback_checkpoint is not None and Path(fallback_checkpoint).is_file():
                return (
                    f"changenet:{fallback_checkpoint}",
                    f"{missing}; using changenet:{fallback_checkpoint} backbone features instead.",
                )
            return "pixels", f"{missing}; no ChangeNet checkpoint to fall back to, using the pixel baseline."
        return preferred, f"using SigLIP weights from {folder}."
    if kind == "changenet":
        if not arg or not Path(arg).expanduser().is_file():
            raise SpecloopError(f"embedder {preferred}: checkpoint file {arg or '(none)'} not found.")
        return preferred, f"using the backbone features of ChangeNet checkpoint {arg}."
    if kind == "timm" and arg:
        name, weights = _split_at(arg)
        _check_timm_name(preferred, name)
        if weights is not None and not weights.is_file():
            raise SpecloopError(f"embedder {preferred}: weights file {weights} not found.")
        how = f"weights {weights}" if weights else "random initialisation (no weights file given)"
        return preferred, f"using timm {name} features with {how}."
    if preferred == "pixels":
        return preferred, "using the pixel baseline (downsampled, mean-centred pixels; no model)."
    raise SpecloopError(f"unknown embedder {preferred!r}; use {EMBEDDER_HELP}.")


def check_embedder(spec_name: str) -> None:
    """Refuse an embedder that cannot run before anything trains (SigLIP is looked for at pre-flight,
    where it may fall back): an unknown kind, a name timm does not know, a missing file."""
    if spec_name.partition(":")[0] != "siglip":
        resolve_embedder(spec_name)


def _check_timm_name(preferred: str, name: str) -> None:
    import timm

    if not timm.is_model(name):
        near = difflib.get_close_matches(name, timm.list_models(), n=1)
        hint = f"; did you mean {near[0]}?" if near else " (see timm.list_models())."
        raise SpecloopError(f"embedder {preferred}: {name!r} is not a timm model name{hint}", rule="embedder")
