"""Pairs of (golden, test) images from a ChangeNet CSV, per the AOI data contract.

Each light of `input_map` is decoded, resized to `image_height` x `image_width` and kept as its own
tile so that augmentations (rotations included) act on every light the same way; tiles are joined
`linear` or `grid` only after augmentation (`to_model_input`). Small datasets are decoded once
into one uint8 tensor in memory: on a 2-core machine, decoding PNGs every epoch costs more than the
forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset, Sampler
from torchvision.transforms.v2 import functional as TF

from specloop.errors import ContractError
from specloop.skills.aoi.images import grid_shape, image_files, light_names, open_image, to_rgb
from specloop.skills.aoi.schema import FIRST_DATA_LINE, GOOD_LABEL, check_rows, read_csv
from specloop.skills.aoi.spec import DatasetClassifyConfig

# Decoded datasets up to this size are kept in memory.
CACHE_LIMIT_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class ImageLayout:
    lights: tuple[str, ...]
    height: int
    width: int
    image_ext: str
    concat_type: str | None
    grid_map: dict[str, int] | None

    @classmethod
    def from_config(cls, ds: DatasetClassifyConfig) -> ImageLayout:
        return cls(
            tuple(light_names(ds.input_map)),
            ds.image_height,
            ds.image_width,
            ds.image_ext,
            ds.concat_type,
            dict(ds.grid_map) if ds.grid_map else None,
        )

    @property
    def n_tiles(self) -> int:
        return max(1, len(self.lights))


def load_table(csv: Path, images_dir: Path, layout: ImageLayout) -> pd.DataFrame:
    """Read a ChangeNet CSV and check its rows and that every image file exists.

    Raises ContractError naming the file, line and rule on the first problem."""
    df = read_csv(csv)
    problems = check_rows(df, str(csv))
    if problems:
        raise ContractError(problems[0].sentence() + ".")
    if not images_dir.is_dir():
        raise ContractError(f"{csv}: images directory {images_dir} does not exist.", rule="images-dir")
    for i, row in enumerate(df[["input_path", "golden_path", "object_name"]].itertuples(index=False)):
        for side in (row.input_path, row.golden_path):
            for f in image_files(images_dir, side, row.object_name, layout.lights, layout.image_ext):
                if not f.is_file():
                    raise ContractError(
                        f"{csv}, line {i + FIRST_DATA_LINE}: image {f} does not exist.", rule="image-missing"
                    )
    return df


def decode_tiles(files: Sequence[Path], layout: ImageLayout, where: str) -> np.ndarray:
    """(L, 3, H, W) uint8: every light of one side, resized to the spec's size."""
    out = np.empty((len(files), 3, layout.height, layout.width), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with open_image(f) as img:
                rgb = Image.fromarray(to_rgb(img, f))
                if rgb.size != (layout.width, layout.height):
                    rgb = rgb.resize((layout.width, layout.height), Image.BILINEAR)
                out[i] = np.asarray(rgb).transpose(2, 0, 1)
        except (OSError, UnidentifiedImageError) as exc:
            raise ContractError(
                f"{where}: image {f} cannot be decoded ({exc}).", rule="image-decode"
            ) from None
    return out


class PairDataset(Dataset):
    """Rows of a ChangeNet CSV as uint8 tiles (2, L, 3, H, W) [golden, test] and a 0/1 defect label.

    `__getitems__` returns a whole collated batch, so a DataLoader with `collate_fn=collate_batch`
    indexes the in-memory cache in one step instead of stacking items one by one."""

    def __init__(
        self, df: pd.DataFrame, images_dir: Path, layout: ImageLayout, *, csv: Path, cache: bool | None = None
    ) -> None:
        self.df = df.reset_index(drop=True)
        self.images_dir = images_dir
        self.layout = layout
        self.csv = csv
        self.labels = torch.tensor(
            [0 if lab == GOOD_LABEL else 1 for lab in self.df["label"]], dtype=torch.long
        )
        per_row = 2 * layout.n_tiles * 3 * layout.height * layout.width
        self.cached: Tensor | None = None
        if cache is None:
            cache = per_row * len(self.df) <= CACHE_LIMIT_BYTES
        if cache:
            self.cached = torch.from_numpy(np.stack([self._decode(i) for i in range(len(self.df))]))

    @classmethod
    def from_csv(
        cls, csv: Path, images_dir: Path, layout: ImageLayout, *, cache: bool | None = None
    ) -> PairDataset:
        return cls(load_table(csv, images_dir, layout), images_dir, layout, csv=csv, cache=cache)

    def __len__(self) -> int:
        return len(self.df)

    def _decode(self, i: int) -> np.ndarray:
        row = self.df.iloc[i]
        where = f"{self.csv}, line {i + FIRST_DATA_LINE}"
        lay = self.layout
        sides = [
            decode_tiles(
                image_files(self.images_dir, rel, row["object_name"], lay.lights, lay.image_ext), lay, where
            )
            for rel in (row["golden_path"], row["input_path"])
        ]
        return np.stack(sides)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        pairs, labels = self.__getitems__([i])
        return pairs[0], labels[0]

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        if self.cached is not None:
            return self.cached[idx], self.labels[idx]
        return torch.from_numpy(np.stack([self._decode(int(i)) for i in idx])), self.labels[idx]

    @property
    def n_defect(self) -> int:
        return int(self.labels.sum())


def collate_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return batch


class EpochSampler(Sampler[int]):
    """Shuffled (or `fpratio_sampling`-weighted) indices, one equal shard per rank.

    `fpratio_sampling = r > 0` draws rows with replacement, a PASS row with weight r relative to a
    defect row's 1 (r = 0.1 with 10 PASS per defect gives balanced batches); r = 0 is a plain
    shuffle. All ranks draw the same sequence from `seed + epoch` and keep every world-th index,
    the way DistributedSampler shards."""

    def __init__(self, labels: Tensor, *, fpratio: float, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n = len(labels)
        self.weights = None
        if fpratio > 0 and 0 < int(labels.sum()) < self.n:
            self.weights = torch.where(labels == 0, fpratio, 1.0).double()
        self.seed, self.rank, self.world = seed, rank, world
        self.epoch = 0
        self.per_rank = math.ceil(self.n / world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        total = self.per_rank * self.world
        if self.weights is not None:
            order = torch.multinomial(self.weights, total, replacement=True, generator=g)
        else:
            order = torch.randperm(self.n, generator=g)
            if total > self.n:
                order = torch.cat([order, order[: total - self.n]])
        return iter(order[self.rank : total : self.world].tolist())

    def __len__(self) -> int:
        return self.per_rank


class Preprocess:
    """uint8 tiles (B, 2, L, 3, H, W) -> normalised, joined model inputs, augmented if asked.

    Every random choice is drawn once per pair and applied to golden and test alike."""

    def __init__(
        self, ds: DatasetClassifyConfig, layout: ImageLayout, *, augment: bool, seed: int = 0
    ) -> None:
        aug = ds.augmentation_config
        self.cfg = aug
        self.layout = layout
        self.augment = augment and aug.augment
        mean = torch.tensor(aug.rgb_input_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(aug.rgb_input_std, dtype=torch.float32).view(1, 3, 1, 1)
        # (x / 255 - mean) / std == x * scale - shift
        self.scale = 1.0 / (255.0 * std)
        self.shift = mean / std
        self.gen = torch.Generator().manual_seed(seed)

    def _u(self, lo: float = 0.0, hi: float = 1.0) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=self.gen))

    def _augment(self, x: Tensor) -> Tensor:
        """x: uint8 (B, 2, L, 3, H, W). Flips and quarter turns act on the uint8 tiles, vectorised over
        the batch; colour, scale-crop and blur (off in the baseline spec) run in float on only the
        pairs that drew them and are rounded back to uint8."""
        c = self.cfg
        b = x.shape[0]
        if c.random_flip.enable:
            m = torch.rand(b, generator=self.gen) < c.random_flip.hflip_probability
            x[m] = x[m].flip(-1)
            m = torch.rand(b, generator=self.gen) < c.random_flip.vflip_probability
            x[m] = x[m].flip(-2)
        rot = c.random_rotate
        if rot.enable and rot.angle_list:
            m = torch.rand(b, generator=self.gen) < rot.rotate_probability
            pick = torch.randint(len(rot.angle_list), (b,), generator=self.gen)
            for k, angle in enumerate(rot.angle_list):
                sel = m & (pick == k)
                if sel.any():
                    x[sel] = _rotate(x[sel], float(angle))
        if c.random_color.enable:
            m = torch.rand(b, generator=self.gen) < c.random_color.color_probability
            if m.any():
                x[m] = _to_uint8(self._color(x[m].float().div_(255)))
        crop = c.with_random_crop and c.with_scale_random_crop.enable
        if crop or c.with_random_blur:
            lo, hi = [*c.with_scale_random_crop.scale_range, 1.0, 1.0][:2]
            for i in range(b):
                do_blur = c.with_random_blur and self._u() < 0.5
                if not (crop or do_blur):
                    continue
                s = x[i].flatten(0, 1).float().div_(255)
                if crop:
                    s = self._scale_crop(s, self._u(lo, hi))
                if do_blur:
                    s = TF.gaussian_blur(s, [3, 3], [self._u(0.1, 1.0)])
                x[i] = _to_uint8(s).unflatten(0, (2, -1))
        return x

    def _factor(self, n: int, spread: float) -> Tensor:
        f = (1 + (torch.rand(n, generator=self.gen) * 2 - 1) * spread).clamp(min=0)
        return f.view(-1, 1, 1, 1, 1, 1)

    def _color(self, x: Tensor) -> Tensor:
        """Brightness, contrast, saturation and hue jitter of float (n, 2, L, 3, H, W) in [0, 1], one
        set of factors per pair (golden, test and every light alike)."""
        c = self.cfg.random_color
        n = x.shape[0]
        lum = _LUMA.view(1, 1, 1, 3, 1, 1)
        x = x * self._factor(n, c.brightness)
        fc = self._factor(n, c.contrast)
        x = fc * x + (1 - fc) * (x * lum).sum(dim=3, keepdim=True).mean(dim=(3, 4, 5), keepdim=True)
        fs = self._factor(n, c.saturation)
        x = fs * x + (1 - fs) * (x * lum).sum(dim=3, keepdim=True)
        if c.hue > 0:
            # Hue shift as a rotation of the chroma plane in YIQ space: one 3x3 matrix per pair.
            theta = (torch.rand(n, generator=self.gen) * 2 - 1) * c.hue * 2 * math.pi
            rot = torch.zeros(n, 3, 3)
            rot[:, 0, 0] = 1
            rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = (
                theta.cos(),
                -theta.sin(),
                theta.sin(),
                theta.cos(),
            )
            mat = _YIQ_INV @ rot @ _YIQ
            moved = x.movedim(3, 1)  # (n, 3, 2, L, H, W)
            x = torch.bmm(mat, moved.reshape(n, 3, -1)).view(moved.shape).movedim(1, 3)
        return x.clamp_(0, 1)

    def _scale_crop(self, s: Tensor, scale: float) -> Tensor:
        h, w = s.shape[-2:]
        sh, sw = max(h, round(h * scale)), max(w, round(w * scale))
        if (sh, sw) == (h, w):
            return s
        s = F.interpolate(s, size=(sh, sw), mode="bilinear", align_corners=False)
        top = int(torch.randint(sh - h + 1, (), generator=self.gen))
        left = int(torch.randint(sw - w + 1, (), generator=self.gen))
        return s[..., top : top + h, left : left + w]

    def __call__(self, tiles: Tensor, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """Returns (golden, test) as float (B, 3, H', W') on `device`, channels_last."""
        x = self._augment(tiles.clone()) if self.augment else tiles
        # Join and lay out in uint8 (4x less memory traffic), then one fused float conversion.
        joined = join_tiles(x.transpose(0, 1).flatten(0, 1), self.layout)
        joined = joined.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        out = joined.float().mul_(self.scale.to(joined.device)).sub_(self.shift.to(joined.device))
        b = tiles.shape[0]
        return out[:b], out[b:]


_LUMA = torch.tensor([0.299, 0.587, 0.114])
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_INV = torch.linalg.inv(_YIQ)


def _to_uint8(x: Tensor) -> Tensor:
    return x.mul(255).round_().clamp_(0, 255).to(torch.uint8)


def _rotate(s: Tensor, angle: float) -> Tensor:
    h, w = s.shape[-2:]
    if angle % 90 == 0:
        k = int(angle // 90) % 4
        if k % 2 == 1 and h != w:  # a quarter turn would change the tile shape
            return s
        return torch.rot90(s, k, dims=(-2, -1))
    return TF.rotate(s, angle)


def join_tiles(x: Tensor, layout: ImageLayout) -> Tensor:
    """(N, L, 3, H, W) -> (N, 3, H', W'): `linear` stacks lights vertically, `grid` tiles row-major
    (as `specloop.skills.aoi.images.join_lights` does for arrays)."""
    n_tiles = x.shape[1]
    if n_tiles == 1:
        return x[:, 0]
    if layout.concat_type in (None, "linear"):
        return torch.cat(list(x.unbind(1)), dim=-2)
    cols, rows = grid_shape(n_tiles, layout.grid_map)
    cells = list(x.unbind(1))[: cols * rows]
    cells += [torch.zeros_like(cells[0])] * (cols * rows - len(cells))
    return torch.cat([torch.cat(cells[r * cols : (r + 1) * cols], dim=-1) for r in range(rows)], dim=-2)
