"""The pooled backbone features of a trained ChangeNet (`changenet:<checkpoint>`): in-domain embeddings.

Images are prepared exactly as the model saw them in training, from the spec stored in the
checkpoint: each light resized to the spec's size, normalised with its mean/std, joined by its
`concat_type`. The lights join asked of `get_embedder` is therefore not used; the version names
the checkpoint's join instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specloop.errors import SpecloopError
from specloop.skills.mining.embedders.base import Item, LightsJoin, TorchEmbedder, file_sha256, pick_device


class ChangeNetEmbedder(TorchEmbedder):
    """`ChangeNet.embed`: the deepest backbone feature map, average-pooled, of the test side."""

    name = "changenet"

    def __init__(
        self,
        checkpoint: Path,
        join: LightsJoin | None = None,
        *,
        device: str = "auto",
        batch_size: int = 64,
        progress: bool = True,
    ) -> None:
        import torch

        from specloop.skills.changenet.checkpoint import load_model
        from specloop.skills.changenet.data import ImageLayout

        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise SpecloopError(f"embedder changenet:{checkpoint}: checkpoint file not found.")
        self.device = pick_device(device)
        model, spec = load_model(checkpoint, self.device)
        ds = spec.dataset.classify
        super().__init__(LightsJoin(ds.concat_type, ds.grid_map), progress)
        self.layout = ImageLayout.from_config(ds)
        self.model = model.eval()
        self.batch_size = batch_size
        aug = ds.augmentation_config
        self.mean = torch.tensor(aug.rgb_input_mean, device=self.device).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(aug.rgb_input_std, device=self.device).view(1, 1, 3, 1, 1)
        probe = np.zeros(
            (max(1, len(self.layout.lights)), 3, self.layout.height, self.layout.width), np.uint8
        )
        with torch.inference_mode():
            self.dim = int(self._forward([probe]).shape[1])
        self.checkpoint = checkpoint
        self.version = (
            f"{checkpoint.name}@{file_sha256(checkpoint)[:16]}|{spec.model.backbone.type}|"
            f"{self.layout.height}x{self.layout.width}|{self.join.tag()}"
        )

    def _load(self, files: Item) -> np.ndarray:
        """(L, 3, H, W) uint8: every light, resized to the checkpoint spec's size."""
        from specloop.skills.changenet.data import decode_tiles

        missing = [str(f) for f in files if not Path(f).is_file()]
        if missing:
            raise SpecloopError(f"{missing[0]}: image file not found (every light of a sample must exist).")
        return decode_tiles(list(files), self.layout, str(files[0]))

    def _forward(self, images: list[np.ndarray]):
        import torch

        from specloop.skills.changenet.data import join_tiles

        x = torch.from_numpy(np.stack(images)).to(self.device).float().div_(255)
        x = (x - self.mean) / self.std
        return self.model.embed(join_tiles(x, self.layout))
