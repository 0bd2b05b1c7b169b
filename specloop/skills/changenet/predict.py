"""Scoring a dataset with a model: shared by validation and inference, sharded over torchrun ranks."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from specloop.skills.changenet.data import PairDataset, Preprocess
from specloop.skills.changenet.model import ChangeNet
from specloop.skills.changenet.progress import Bar
from specloop.skills.changenet.runtime import Runtime, gather_objects


def autocast(device: torch.device):
    """bf16 autocast on CUDA (no GradScaler needed); plain float32 on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.inference_mode()
def predict(
    model: ChangeNet,
    data: PairDataset,
    pre: Preprocess,
    rt: Runtime,
    *,
    batch_size: int,
    loss_fn: nn.Module | None = None,
    bar: Bar | None = None,
) -> tuple[np.ndarray, float | None]:
    """Scores for every row of `data` in row order (on every rank), and the mean loss if asked."""
    was_training = model.training
    model.eval()
    mine = list(range(rt.rank, len(data), rt.world))
    scores: list[np.ndarray] = []
    loss_sum = torch.zeros((), dtype=torch.float64)
    for start in range(0, len(mine), batch_size):
        idx = mine[start : start + batch_size]
        tiles, labels = data.__getitems__(idx)
        golden, test = pre(tiles, rt.device)
        with autocast(rt.device):
            out = model(golden, test)
        if loss_fn is not None:
            loss_sum += loss_fn(out.float(), labels.to(rt.device)).double().cpu() * len(idx)
        scores.append(model.scores(out).cpu().numpy())
        if bar is not None:
            bar.advance(len(idx) * rt.world)
    model.train(was_training)
    local = (mine, np.concatenate(scores) if scores else np.zeros(0), float(loss_sum))
    result = np.zeros(len(data), dtype=np.float64)
    total_loss = 0.0
    for part_idx, part_scores, part_loss in gather_objects(rt, local):  # type: ignore[misc]
        result[part_idx] = part_scores
        total_loss += part_loss
    return result, (total_loss / max(len(data), 1) if loss_fn is not None else None)
