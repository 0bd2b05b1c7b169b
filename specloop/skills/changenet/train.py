"""Training: the spec's optimizer, schedule, validation and checkpoint cadence, on CPU or CUDA,
alone or under torchrun (DistributedDataParallel, gloo on CPU; only rank 0 writes).

Two different starts, as TAO distinguishes them:
- `train.pretrained_model_path`: initialise the weights from a previous checkpoint; the optimizer,
  schedule and epoch counter start fresh (each DEFT fine-tune iteration does this).
- `train.resume_training_checkpoint_path`: continue an interrupted run: weights, optimizer and
  schedule state, and the epoch counter, history and best score all come from the checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from specloop.errors import SpecloopError
from specloop.skills.aoi.spec import ExperimentSpec, resolve_path
from specloop.skills.changenet.checkpoint import load_weights, read_checkpoint, save_checkpoint
from specloop.skills.changenet.data import EpochSampler, ImageLayout, PairDataset, Preprocess, collate_batch
from specloop.skills.changenet.kpi import auroc, far_at_full_recall
from specloop.skills.changenet.model import backbone_note, build_loss, build_model
from specloop.skills.changenet.predict import autocast, predict
from specloop.skills.changenet.progress import Bar, say
from specloop.skills.changenet.runtime import Runtime, barrier, gather_objects, runtime

# monitor name -> (history key, lower is better)
MONITORS = {
    "val_loss": ("val_loss", True),
    "val_far": ("val_far_at_100_recall", True),
    "val_far_at_100_recall": ("val_far_at_100_recall", True),
    "val_auroc": ("val_auroc", False),
}


@dataclass
class TrainResult:
    best_val: Path
    latest: Path
    epochs_run: int
    seconds: float
    pairs_per_sec: float
    device: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_val": str(self.best_val),
            "latest": str(self.latest),
            "epochs_run": self.epochs_run,
            "seconds": round(self.seconds, 3),
            "pairs_per_sec": round(self.pairs_per_sec, 2),
            "device": self.device,
            "notes": list(self.notes),
        }


def dataset_paths(spec: ExperimentSpec, root: Path, which: str) -> tuple[Path, Path] | None:
    """(csv, images_dir) of `dataset.classify.<which>`, or None when its csv_path is not set.

    An unset images_dir means the CSV's own folder."""
    dp = getattr(spec.dataset.classify, which)
    csv = resolve_path(dp.csv_path, root)
    if csv is None:
        return None
    images_dir = resolve_path(dp.images_dir, root) or csv.parent
    return csv, images_dir


def make_optimizer(spec: ExperimentSpec, model: nn.Module) -> torch.optim.Optimizer:
    o = spec.train.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.optim == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.optim == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


def make_scheduler(
    spec: ExperimentSpec, opt: torch.optim.Optimizer, steps_per_epoch: int
) -> tuple[torch.optim.lr_scheduler.LRScheduler, bool]:
    """(scheduler, steps per batch?): `linear` decays to 0 over all steps, stepped every batch;
    `step` divides the rate by 10 at 1/3 and 2/3 of the epochs, stepped every epoch."""
    epochs = spec.train.num_epochs
    if spec.train.optim.policy == "linear":
        total = max(1, epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total)), True
    milestones = sorted({max(1, epochs // 3), max(1, 2 * epochs // 3)})
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1), False


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o: object) -> object:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


class _Log:
    def __init__(self, path: Path, enabled: bool, progress: bool) -> None:
        self.path, self.enabled, self.progress = path, enabled, progress

    def __call__(self, line: str) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as fh:
            fh.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")
        say(line, enabled=self.progress)


def train(spec: ExperimentSpec, root: Path, out_dir: Path, *, progress: bool = True) -> TrainResult:
    """Train a ChangeNet as the spec says; see the module docstring for the two kinds of start.

    Writes out_dir/{epoch_NNN.pth, best_val.pth, latest.pth, status.json, train.log} (rank 0)."""
    t_start = time.perf_counter()
    with runtime(spec.train.device) as rt:
        return _train(spec, root, out_dir, rt, progress=progress and rt.is_main, t_start=t_start)


def _train(
    spec: ExperimentSpec, root: Path, out_dir: Path, rt: Runtime, *, progress: bool, t_start: float
) -> TrainResult:
    ds = spec.dataset.classify
    tr = spec.train
    notes: list[str] = []
    torch.manual_seed(tr.seed)
    np.random.seed(tr.seed % 2**32)
    layout = ImageLayout.from_config(ds)

    paths = dataset_paths(spec, root, "train_dataset")
    if paths is None:
        raise SpecloopError(
            "dataset.classify.train_dataset.csv_path is not set; training needs a CSV [spec]."
        )
    train_data = PairDataset.from_csv(*paths, layout)
    if len(train_data) == 0:
        raise SpecloopError(f"{paths[0]}: the training CSV has no rows [empty-dataset].")
    val_paths = dataset_paths(spec, root, "validation_dataset")
    val_data = PairDataset.from_csv(*val_paths, layout) if val_paths else None
    if val_data is None:
        notes.append("no dataset.classify.validation_dataset: best_val.pth is the latest epoch")

    model = build_model(spec, root)
    notes.append(backbone_note(spec))
    loss_fn = build_loss(spec)
    monitor_name = tr.optim.monitor_name
    if monitor_name not in MONITORS:
        notes.append(
            f"train.optim.monitor_name {monitor_name!r} is not one of {', '.join(MONITORS)}; using val_loss"
        )
        monitor_name = "val_loss"
    monitor_key, lower_better = MONITORS[monitor_name]

    sampler = EpochSampler(
        train_data.labels, fpratio=ds.fpratio_sampling, seed=tr.seed, rank=rt.rank, world=rt.world
    )
    workers = 0 if train_data.cached is not None else ds.workers
    loader = DataLoader(
        train_data,
        batch_size=ds.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_batch,
        persistent_workers=workers > 0,
    )
    optimizer = make_optimizer(spec, model)
    scheduler, per_step = make_scheduler(spec, optimizer, len(loader))

    start_epoch = 0
    history: list[dict[str, Any]] = []
    best: float | None = None
    best_epoch: int | None = None
    resume = resolve_path(tr.resume_training_checkpoint_path, root)
    pretrained = resolve_path(tr.pretrained_model_path, root)
    if resume is not None:
        if pretrained is not None:
            notes.append("both resume_training_checkpoint_path and pretrained_model_path are set; resuming")
        ckpt = read_checkpoint(resume)
        load_weights(model, ckpt, resume)
        if "optimizer" not in ckpt or "epoch" not in ckpt:
            raise SpecloopError(
                f"train.resume_training_checkpoint_path {resume} holds no optimizer state or epoch; use "
                "train.pretrained_model_path to start from its weights [resume]."
            )
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch = int(ckpt["epoch"])
        history = list(ckpt.get("history", []))
        best, best_epoch = ckpt.get("best_metric"), ckpt.get("best_epoch")
        notes.append(f"resumed from {resume} after epoch {start_epoch}")
    elif pretrained is not None:
        load_weights(model, read_checkpoint(pretrained), pretrained)
        notes.append(f"weights initialised from {pretrained}; fresh optimizer and epoch counter")

    model.to(rt.device, memory_format=torch.channels_last)
    loss_fn.to(rt.device)
    net: nn.Module = model
    if rt.distributed:
        net = DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None
        )
    pre_train = Preprocess(ds, layout, augment=True, seed=tr.seed + 7919 * rt.rank)
    pre_eval = Preprocess(ds, layout, augment=False)

    if rt.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    log = _Log(out_dir / "train.log", rt.is_main, progress)
    log(
        f"train {len(train_data)} pairs ({train_data.n_defect} defect), validation "
        f"{len(val_data) if val_data else 0}; {spec.model.backbone.type}/{spec.model.classify.difference_module} "
        f"on {rt.device}{f' x{rt.world} ranks' if rt.distributed else ''}, {torch.get_num_threads()} thread(s), "
        f"epochs {start_epoch + 1}..{tr.num_epochs}"
    )
    for n in notes:
        log(f"note: {n}")

    latest = out_dir / "latest.pth"
    best_path = out_dir / "best_val.pth"
    spec_dict = spec.model_dump(mode="json")
    train_seconds = 0.0
    pairs_done = 0
    epochs_run = 0
    val_bs = spec.evaluate.batch_size or ds.batch_size

    def payload(epoch: int) -> dict[str, Any]:
        return {
            "state_dict": model.state_dict(),
            "spec": spec_dict,
            "backbone": spec.model.backbone.type,
            "difference_module": spec.model.classify.difference_module,
            "epoch": epoch,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "history": history,
            "best_metric": best,
            "best_epoch": best_epoch,
            "monitor": monitor_name,
        }

    total_pairs = len(sampler) * rt.world * max(0, tr.num_epochs - start_epoch)
    with Bar("train", total_pairs, enabled=progress) as bar:
        for epoch in range(start_epoch + 1, tr.num_epochs + 1):
            sampler.set_epoch(epoch)
            net.train()
            loss_sum = torch.zeros((), dtype=torch.float64, device=rt.device)
            seen = 0
            t0 = time.perf_counter()
            for tiles, labels in loader:
                golden, test = pre_train(tiles, rt.device)
                labels = labels.to(rt.device, non_blocking=True)
                with autocast(rt.device):
                    out = net(golden, test)
                loss = loss_fn(out.float(), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if per_step:
                    scheduler.step()
                loss_sum += loss.detach().double() * labels.shape[0]
                seen += labels.shape[0]
                bar.advance(labels.shape[0] * rt.world, info=f"epoch {epoch}/{tr.num_epochs}")
            if not per_step:
                scheduler.step()
            epoch_seconds = time.perf_counter() - t0
            parts = gather_objects(rt, (float(loss_sum), seen))
            seen_all = sum(int(p[1]) for p in parts)  # type: ignore[index]
            train_loss = sum(float(p[0]) for p in parts) / max(seen_all, 1)  # type: ignore[index]
            train_seconds += epoch_seconds
            pairs_done += seen_all
            epochs_run += 1
            record: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": round(train_loss, 6),
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": round(epoch_seconds, 3),
                "pairs_per_sec": round(seen_all / max(epoch_seconds, 1e-9), 2),
            }
            validate = val_data is not None and (
                epoch % tr.validation_interval == 0 or epoch == tr.num_epochs
            )
            improved = False
            if validate:
                assert val_data is not None
                scores, val_loss = predict(model, val_data, pre_eval, rt, batch_size=val_bs, loss_fn=loss_fn)
                defect = val_data.labels.numpy().astype(bool)
                far, _ = far_at_full_recall(scores, defect)
                record.update(
                    val_loss=round(float(val_loss or 0.0), 6),
                    val_auroc=auroc(scores, defect),
                    val_far_at_100_recall=far,
                )
                value = record[monitor_key]
                if value is not None and (best is None or (value < best if lower_better else value > best)):
                    best, best_epoch, improved = float(value), epoch, True
            history.append(record)
            if rt.is_main:
                save_checkpoint(latest, payload(epoch))
                if epoch % tr.checkpoint_interval == 0:
                    link_or_copy(latest, out_dir / f"epoch_{epoch:03d}.pth")
                if improved or val_data is None:
                    link_or_copy(latest, best_path)
                _write_json(
                    out_dir / "status.json",
                    _status(record, history, tr.num_epochs, best, best_epoch, monitor_name, "running"),
                )
            val_txt = (
                f" · val_loss {record['val_loss']:.4f} AUROC {_fmt(record['val_auroc'])} "
                f"FAR@100%R {record['val_far_at_100_recall']:.1%}{' *' if improved else ''}"
                if validate
                else ""
            )
            log(
                f"[train] epoch {epoch}/{tr.num_epochs} · loss {train_loss:.4f} · {epoch_seconds:.1f}s "
                f"({record['pairs_per_sec']:.0f} pairs/s){val_txt}"
            )

    if rt.is_main:
        if epochs_run == 0 and not latest.exists():
            save_checkpoint(latest, payload(start_epoch))
        if not best_path.exists():
            link_or_copy(latest, best_path)
            notes.append("no validation improved a score; best_val.pth is the latest epoch")
        final = history[-1] if history else {"epoch": start_epoch}
        status = _status(final, history, tr.num_epochs, best, best_epoch, monitor_name, "done")
        status["notes"] = notes
        _write_json(out_dir / "status.json", status)
    barrier(rt)
    pairs_per_sec = pairs_done / train_seconds if train_seconds > 0 else 0.0
    seconds = time.perf_counter() - t_start
    log(
        f"[train] done · {epochs_run} epoch(s) in {seconds:.1f}s · {pairs_per_sec:.1f} pairs/s · best epoch {best_epoch}"
    )
    return TrainResult(best_path, latest, epochs_run, seconds, pairs_per_sec, str(rt.device), notes)


def link_or_copy(src: Path, dst: Path) -> None:
    """Make `dst` hold `src`'s bytes, atomically. `latest.pth` is always replaced by a new file, never
    rewritten in place, so a hard link is a safe zero-cost copy of one epoch's checkpoint."""
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _status(
    record: dict[str, Any],
    history: list[dict[str, Any]],
    num_epochs: int,
    best: float | None,
    best_epoch: int | None,
    monitor: str,
    state: str,
) -> dict[str, Any]:
    return {
        "state": state,
        "epoch": record.get("epoch"),
        "num_epochs": num_epochs,
        "train_loss": record.get("train_loss"),
        "val_loss": record.get("val_loss"),
        "val_auroc": record.get("val_auroc"),
        "val_far_at_100_recall": record.get("val_far_at_100_recall"),
        "monitor": monitor,
        "best_metric": _finite(best),
        "best_epoch": best_epoch,
        "history": history,
    }
