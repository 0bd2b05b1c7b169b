"""SigLIP image embeddings (the embedder NVIDIA's DEFT loop uses), loaded offline.

Weights come from a local directory (a `save_pretrained` folder or a copied Hugging Face
snapshot) or from the Hugging Face cache; nothing is downloaded (`local_files_only=True`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from specloop.errors import SpecloopError
from specloop.skills.mining.embedders.base import LightsJoin, TorchEmbedder, file_sha256, pick_device

DEFAULT_SIGLIP_ID = "google/siglip-base-patch16-224"
SIGLIP_PATH_ENV = "SPECLOOP_SIGLIP_PATH"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


class SiglipNotFound(SpecloopError):
    """No SigLIP weights in any place looked at (`looked` lists them)."""

    def __init__(self, message: str, looked: list[str]) -> None:
        super().__init__(message)
        self.looked = looked


def _hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        p.suffix in _WEIGHT_SUFFIXES for p in folder.iterdir() if p.is_file()
    )


def find_siglip(siglip_path: Path | None = None, model_id: str = DEFAULT_SIGLIP_ID) -> tuple[Path, list[str]]:
    """The folder holding SigLIP weights, and the places looked at (in order).

    Looks at `siglip_path`, then `$SPECLOOP_SIGLIP_PATH`, then the Hugging Face cache for
    `model_id`. Raises SiglipNotFound naming every place and how to provide the weights.
    """
    looked: list[str] = []
    candidates: list[Path] = []
    if siglip_path is not None:
        candidates.append(Path(siglip_path).expanduser())
    if os.environ.get(SIGLIP_PATH_ENV):
        candidates.append(Path(os.environ[SIGLIP_PATH_ENV]).expanduser())
    for folder in candidates:
        looked.append(str(folder))
        if folder.is_dir() and _has_weights(folder):
            return folder, looked
    looked.append(f"the Hugging Face cache {_hf_cache_dir()} ({model_id})")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        snap = Path(snapshot_download(model_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        snap = None
    if snap is not None and _has_weights(snap):
        return snap, looked
    raise SiglipNotFound(
        f"SigLIP weights not found (looked in {'; '.join(looked)}); copy a downloaded {model_id} "
        f"folder here and pass --siglip-path DIR (or set {SIGLIP_PATH_ENV}), or fill the Hugging Face "
        f"cache on a connected machine with `hf download {model_id}`.",
        looked,
    )


def weights_id(folder: Path) -> str:
    """A short hash over the folder's config and weight files: changes whenever the weights do."""
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and (p.suffix in _WEIGHT_SUFFIXES or p.name == "config.json"):
            h.update(p.name.encode())
            h.update(file_sha256(p).encode())
    return h.hexdigest()[:16]


class SiglipEmbedder(TorchEmbedder):
    """`SiglipVisionModel` pooled output (the attention-pooling head), with the model's own processor."""

    name = "siglip"

    def __init__(
        self,
        join: LightsJoin | None = None,
        *,
        siglip_path: Path | None = None,
        model_id: str = DEFAULT_SIGLIP_ID,
        device: str = "auto",
        batch_size: int = 32,
        progress: bool = True,
    ) -> None:
        from transformers import AutoImageProcessor, SiglipVisionModel

        super().__init__(join or LightsJoin(), progress)
        folder, _ = find_siglip(siglip_path, model_id)
        self.source = folder
        self.device = pick_device(device)
        self.batch_size = batch_size
        try:
            self.model = SiglipVisionModel.from_pretrained(folder, local_files_only=True)
            self.processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SpecloopError(
                f"{folder}: cannot load SigLIP weights or image processor ({first})."
            ) from None
        self.model.eval().to(self.device)
        self.dim = int(self.model.config.hidden_size)
        self.version = f"{folder.name}@{weights_id(folder)}|{self.join.tag()}"

    def _forward(self, images: list[np.ndarray]):
        from PIL import Image

        batch = self.processor(images=[Image.fromarray(img) for img in images], return_tensors="pt")
        pixels = batch["pixel_values"].to(self.device, dtype=self.model.dtype)
        return self.model(pixel_values=pixels).pooler_output
