"""Any timm model as a feature extractor (`timm:<name>[@<weights file>]`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specloop.errors import SpecloopError
from specloop.skills.mining.embedders.base import LightsJoin, TorchEmbedder, file_sha256, pick_device


class TimmEmbedder(TorchEmbedder):
    """timm model with its classifier removed (`num_classes=0`: globally pooled features).

    Weights come from a local file (`pretrained_cfg_overlay=dict(file=...)`); without one the model
    is randomly initialised with a fixed seed, and its version says so.
    """

    def __init__(
        self,
        model_name: str,
        join: LightsJoin | None = None,
        *,
        weights: Path | None = None,
        device: str = "auto",
        batch_size: int = 32,
        progress: bool = True,
    ) -> None:
        import timm
        import torch
        from timm.data import create_transform, resolve_data_config

        super().__init__(join or LightsJoin(), progress)
        if not timm.is_model(model_name):
            raise SpecloopError(f"embedder timm:{model_name}: timm has no model named {model_name!r}.")
        if weights is not None and not Path(weights).is_file():
            raise SpecloopError(f"embedder timm:{model_name}: weights file {weights} not found.")
        self.name = f"timm:{model_name}"
        self.device = pick_device(device)
        self.batch_size = batch_size
        if weights is None:
            torch.manual_seed(0)
            self.model = timm.create_model(model_name, pretrained=False, num_classes=0)
            tag = "random-init-seed0"
        else:
            self.model = timm.create_model(
                model_name, pretrained=True, num_classes=0, pretrained_cfg_overlay=dict(file=str(weights))
            )
            tag = f"{Path(weights).name}@{file_sha256(Path(weights))[:16]}"
        self.model.eval().to(self.device)
        self.dim = int(self.model.num_features)
        self.transform = create_transform(**resolve_data_config({}, model=self.model))
        self.version = f"{tag}|{self.join.tag()}"

    def _forward(self, images: list[np.ndarray]):
        import torch
        from PIL import Image

        batch = torch.stack([self.transform(Image.fromarray(img)) for img in images]).to(self.device)
        return self.model(batch)
