"""Training: the spec's optimizer, schedule, validation and checkpoint cadence, on CPU or CUDA,
alone or under torchrun (DistributedDataParallel, gloo on CPU; only rank 0 writes).

Two different starts, as TAO distinguishes them:
- `train.pretrained_model_path`: initialise the weights from a previous checkpoint; the optimizer,
  schedule and epoch counter start fresh (each DEFT fine-tune iteration does this).
- `train.resume_training_checkpoint_path`: continue an interrupted run: weights, optimizer and
  schedule state, the epoch counter, history and best score, and every random generator the
  remaining epochs draw from (python, numpy, torch CPU and CUDA, the augmentation generator of each
  rank) all come from the checkpoint, so a resumed run ends where the uninterrupted one ends. The
  sampler needs nothing: it reseeds from `seed + epoch`. There is no AMP scaler to carry: CUDA
  trains under bf16 autocast, which needs none.

Retention (`train.keep_checkpoints`): `best_latest` keeps best_val.pth, latest.pth and the newest
epoch_NNN.pth and deletes older epoch files as the run goes; `all` keeps every epoch file. Either
way `checkpoints.json` lists every checkpoint written, kept or pruned, with its sha256.
"""

from __future__ import annotations

import json
import math
import os
import random
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
from specloop.ledger.files import disk_bytes, link_or_copy, sha256_file
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
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # every one written, kept or not
    disk_bytes: int = 0  # what out_dir holds at the end (hard links counted once)

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_val": str(self.best_val),
            "latest": str(self.latest),
            "epochs_run": self.epochs_run,
            "seconds": round(self.seconds, 3),
            "pairs_per_sec": round(self.pairs_per_sec, 2),
            "device": self.device,
            "notes": list(self.notes),
            "checkpoints": list(self.checkpoints),
            "disk_bytes": self.disk_bytes,
        }


MANIFEST = "checkpoints.json"


def rng_state(pre: Preprocess) -> dict[str, Any]:
    """Every generator the rest of a training draws from, as it stands now (one rank)."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "augment": pre.gen.get_state(),
    }


def restore_rng(state: dict[str, Any], pre: Preprocess) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    pre.gen.set_state(state["augment"])


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


@dataclass
class Monitor:
    """The validation score that picks best_val.pth."""

    name: str
    key: str
    lower_better: bool

    def improves(self, value: float | None, best: float | None) -> bool:
        return value is not None and (best is None or (value < best if self.lower_better else value > best))


@dataclass
class SoFar:
    """What the epochs run so far have shown (all of it restored on a resume)."""

    start_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    seconds: float = 0.0  # training time of the epochs run in this call
    pairs: int = 0
    epochs_run: int = 0
    rng: list[dict[str, Any]] | None = None  # per rank, at the end of epoch `start_epoch`
    written: list[dict[str, Any]] = field(default_factory=list)  # checkpoints.json's entries


def choose_monitor(name: str, notes: list[str]) -> Monitor:
    if name not in MONITORS:
        notes.append(f"train.optim.monitor_name {name!r} is not one of {', '.join(MONITORS)}; using val_loss")
        name = "val_loss"
    return Monitor(name, *MONITORS[name])


def load_datasets(
    spec: ExperimentSpec, root: Path, layout: ImageLayout, notes: list[str]
) -> tuple[PairDataset, PairDataset | None]:
    paths = dataset_paths(spec, root, "train_dataset")
    if paths is None:
        raise SpecloopError(
            "dataset.classify.train_dataset.csv_path is not set; training needs a CSV.", rule="spec"
        )
    train_data = PairDataset.from_csv(*paths, layout)
    if len(train_data) == 0:
        raise SpecloopError(f"{paths[0]}: the training CSV has no rows.", rule="empty-dataset")
    val_paths = dataset_paths(spec, root, "validation_dataset")
    val_data = PairDataset.from_csv(*val_paths, layout) if val_paths else None
    if val_data is None:
        notes.append("no dataset.classify.validation_dataset: best_val.pth is the latest epoch")
    return train_data, val_data


def make_loader(spec: ExperimentSpec, data: PairDataset, rt: Runtime) -> tuple[EpochSampler, DataLoader]:
    ds = spec.dataset.classify
    sampler = EpochSampler(
        data.labels, fpratio=ds.fpratio_sampling, seed=spec.train.seed, rank=rt.rank, world=rt.world
    )
    workers = 0 if data.cached is not None else ds.workers
    loader = DataLoader(
        data,
        batch_size=ds.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_batch,
        persistent_workers=workers > 0,
    )
    return sampler, loader


def start_from_checkpoint(
    spec: ExperimentSpec,
    root: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    notes: list[str],
) -> SoFar:
    """The two starts of the module docstring: a resume restores everything, pretrained weights only."""
    tr = spec.train
    resume = resolve_path(tr.resume_training_checkpoint_path, root)
    pretrained = resolve_path(tr.pretrained_model_path, root)
    if resume is None:
        if pretrained is not None:
            load_weights(model, read_checkpoint(pretrained), pretrained)
            notes.append(f"weights initialised from {pretrained}; fresh optimizer and epoch counter")
        return SoFar()
    if pretrained is not None:
        notes.append("both resume_training_checkpoint_path and pretrained_model_path are set; resuming")
    ckpt = read_checkpoint(resume)
    load_weights(model, ckpt, resume)
    if "optimizer" not in ckpt or "epoch" not in ckpt:
        raise SpecloopError(
            f"train.resume_training_checkpoint_path {resume} holds no optimizer state or epoch; use "
            "train.pretrained_model_path to start from its weights.",
            rule="resume",
        )
    optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scheduler"):
        scheduler.load_state_dict(ckpt["scheduler"])
    so_far = SoFar(
        start_epoch=int(ckpt["epoch"]),
        history=list(ckpt.get("history", [])),
        best=ckpt.get("best_metric"),
        best_epoch=ckpt.get("best_epoch"),
        rng=ckpt.get("rng"),
    )
    notes.append(f"resumed from {resume} after epoch {so_far.start_epoch}")
    if so_far.rng is None:
        notes.append(f"{resume} carries no random-generator state; the remaining epochs draw afresh")
    return so_far


def place(model: nn.Module, loss_fn: nn.Module, rt: Runtime) -> nn.Module:
    """Move model and loss to the device; the network to call (DDP-wrapped under torchrun)."""
    model.to(rt.device, memory_format=torch.channels_last)
    loss_fn.to(rt.device)
    if not rt.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)


@dataclass
class Fit:
    """One training call's moving parts, and the checkpoint payload they make together."""

    spec: ExperimentSpec
    rt: Runtime
    model: nn.Module
    net: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    per_step: bool
    monitor: Monitor
    so_far: SoFar
    rng: list[dict[str, Any]] | None = None  # every rank's generators after the last epoch

    def payload(self, epoch: int) -> dict[str, Any]:
        return {
            "state_dict": self.model.state_dict(),
            "spec": self.spec.model_dump(mode="json"),
            "backbone": self.spec.model.backbone.type,
            "difference_module": self.spec.model.classify.difference_module,
            "epoch": epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history": self.so_far.history,
            "best_metric": self.so_far.best,
            "best_epoch": self.so_far.best_epoch,
            "monitor": self.monitor.name,
            "rng": self.rng,
        }


def train_epoch(
    fit: Fit, epoch: int, sampler: EpochSampler, loader: DataLoader, pre: Preprocess, bar: Bar
) -> dict[str, Any]:
    """One pass over the epoch's sample; its record for the history (loss, rate, time)."""
    rt, num_epochs = fit.rt, fit.spec.train.num_epochs
    sampler.set_epoch(epoch)
    fit.net.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=rt.device)
    seen = 0
    t0 = time.perf_counter()
    for tiles, labels in loader:
        golden, test = pre(tiles, rt.device)
        labels = labels.to(rt.device, non_blocking=True)
        with autocast(rt.device):
            out = fit.net(golden, test)
        loss = fit.loss_fn(out.float(), labels)
        fit.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        fit.optimizer.step()
        if fit.per_step:
            fit.scheduler.step()
        loss_sum += loss.detach().double() * labels.shape[0]
        seen += labels.shape[0]
        bar.advance(labels.shape[0] * rt.world, info=f"epoch {epoch}/{num_epochs}")
    if not fit.per_step:
        fit.scheduler.step()
    epoch_seconds = time.perf_counter() - t0
    parts = gather_objects(rt, (float(loss_sum), seen))
    seen_all = sum(int(p[1]) for p in parts)  # type: ignore[index]
    train_loss = sum(float(p[0]) for p in parts) / max(seen_all, 1)  # type: ignore[index]
    fit.so_far.seconds += epoch_seconds
    fit.so_far.pairs += seen_all
    fit.so_far.epochs_run += 1
    return {
        "epoch": epoch,
        "train_loss": round(train_loss, 6),
        "lr": fit.optimizer.param_groups[0]["lr"],
        "seconds": round(epoch_seconds, 3),
        "pairs_per_sec": round(seen_all / max(epoch_seconds, 1e-9), 2),
    }


def validate(fit: Fit, record: dict[str, Any], val_data: PairDataset, pre: Preprocess) -> bool:
    """Score the validation set into `record`; True when the monitored score improved the best."""
    batch = fit.spec.evaluate.batch_size or fit.spec.dataset.classify.batch_size
    scores, val_loss = predict(fit.model, val_data, pre, fit.rt, batch_size=batch, loss_fn=fit.loss_fn)
    defect = val_data.labels.numpy().astype(bool)
    far, _ = far_at_full_recall(scores, defect)
    record.update(
        val_loss=round(float(val_loss or 0.0), 6),
        val_auroc=auroc(scores, defect),
        val_far_at_100_recall=far,
    )
    value = record[fit.monitor.key]
    if not fit.monitor.improves(value, fit.so_far.best):
        return False
    fit.so_far.best, fit.so_far.best_epoch = float(value), record["epoch"]
    return True


def read_manifest(out_dir: Path) -> list[dict[str, Any]]:
    """checkpoints.json's entries (an earlier, killed call's included); [] when there is none."""
    try:
        entries = json.loads((out_dir / MANIFEST).read_text())["checkpoints"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return entries if isinstance(entries, list) else []


def note_written(so_far: SoFar, out_dir: Path, names: list[str], epoch: int, sha256: str, size: int) -> None:
    for name in names:
        so_far.written.append({"file": name, "epoch": epoch, "sha256": sha256, "bytes": size})
    _write_json(out_dir / MANIFEST, {"checkpoints": so_far.written})


def reconcile(out_dir: Path, so_far: SoFar) -> None:
    """On a resume: list a checkpoint a kill left between its write and its manifest entry."""
    last = {e["file"]: e["sha256"] for e in so_far.written}
    for f in sorted(out_dir.glob("*.pth")):
        sha = sha256_file(f)
        if last.get(f.name) != sha:
            note_written(so_far, out_dir, [f.name], so_far.start_epoch, sha, f.stat().st_size)


def prune(out_dir: Path, keep: str, so_far: SoFar) -> None:
    """`best_latest`: delete every epoch_NNN.pth but the newest (latest/best_val are other names)."""
    if keep == "all":
        return
    epoch_files = sorted(out_dir.glob("epoch_[0-9][0-9][0-9]*.pth"))
    pruned = {p.name for p in epoch_files[:-1]}
    for p in epoch_files[:-1]:
        p.unlink()
    for entry in so_far.written:
        if entry["file"] in pruned:
            entry["pruned"] = True
    if pruned:
        _write_json(out_dir / MANIFEST, {"checkpoints": so_far.written})


def save_epoch(fit: Fit, out_dir: Path, record: dict[str, Any], improved: bool, has_val: bool) -> None:
    """latest.pth every epoch, epoch_NNN.pth at the cadence, best_val.pth when it improved (rank 0);
    each recorded in checkpoints.json with its sha256, then older epoch files pruned."""
    epoch, tr, so_far = record["epoch"], fit.spec.train, fit.so_far
    latest = out_dir / "latest.pth"
    save_checkpoint(latest, fit.payload(epoch))
    copies = [f"epoch_{epoch:03d}.pth"] if epoch % tr.checkpoint_interval == 0 else []
    copies += ["best_val.pth"] if improved or not has_val else []
    # the manifest first: a file that exists is always listed, even after a kill
    note_written(so_far, out_dir, [latest.name, *copies], epoch, sha256_file(latest), latest.stat().st_size)
    for name in copies:
        link_or_copy(latest, out_dir / name)
    prune(out_dir, tr.keep_checkpoints, so_far)
    status = _status(
        record, so_far.history, tr.num_epochs, so_far.best, so_far.best_epoch, fit.monitor.name, "running"
    )
    _write_json(out_dir / "status.json", status)


def epoch_line(record: dict[str, Any], num_epochs: int, validated: bool, improved: bool) -> str:
    val_txt = (
        f" · val_loss {record['val_loss']:.4f} AUROC {_fmt(record['val_auroc'])} "
        f"FAR@100%R {record['val_far_at_100_recall']:.1%}{' *' if improved else ''}"
        if validated
        else ""
    )
    return (
        f"[train] epoch {record['epoch']}/{num_epochs} · loss {record['train_loss']:.4f} · "
        f"{record['seconds']:.1f}s ({record['pairs_per_sec']:.0f} pairs/s){val_txt}"
    )


def finish(fit: Fit, out_dir: Path, notes: list[str]) -> None:
    """The final status.json, and a latest/best_val.pth even when no epoch ran or none improved."""
    so_far, tr = fit.so_far, fit.spec.train
    latest, best_path = out_dir / "latest.pth", out_dir / "best_val.pth"
    if so_far.epochs_run == 0 and not latest.exists():
        save_checkpoint(latest, fit.payload(so_far.start_epoch))
        note_written(
            so_far, out_dir, [latest.name], so_far.start_epoch, sha256_file(latest), latest.stat().st_size
        )
    if not best_path.exists():
        link_or_copy(latest, best_path)
        notes.append("no validation improved a score; best_val.pth is the latest epoch")
        epoch = so_far.history[-1]["epoch"] if so_far.history else so_far.start_epoch
        note_written(
            so_far, out_dir, [best_path.name], epoch, sha256_file(best_path), best_path.stat().st_size
        )
    final = so_far.history[-1] if so_far.history else {"epoch": so_far.start_epoch}
    status = _status(
        final, so_far.history, tr.num_epochs, so_far.best, so_far.best_epoch, fit.monitor.name, "done"
    )
    status["notes"] = notes
    _write_json(out_dir / "status.json", status)


def _train(
    spec: ExperimentSpec, root: Path, out_dir: Path, rt: Runtime, *, progress: bool, t_start: float
) -> TrainResult:
    ds, tr = spec.dataset.classify, spec.train
    notes: list[str] = []
    torch.manual_seed(tr.seed)
    np.random.seed(tr.seed % 2**32)
    layout = ImageLayout.from_config(ds)
    train_data, val_data = load_datasets(spec, root, layout, notes)
    model = build_model(spec, root)
    notes.append(backbone_note(spec))
    loss_fn = build_loss(spec)
    monitor = choose_monitor(tr.optim.monitor_name, notes)
    sampler, loader = make_loader(spec, train_data, rt)
    optimizer = make_optimizer(spec, model)
    scheduler, per_step = make_scheduler(spec, optimizer, len(loader))
    so_far = start_from_checkpoint(spec, root, model, optimizer, scheduler, notes)
    net = place(model, loss_fn, rt)
    fit = Fit(spec, rt, model, net, loss_fn, optimizer, scheduler, per_step, monitor, so_far)
    pre_train = Preprocess(ds, layout, augment=True, seed=tr.seed + 7919 * rt.rank)
    pre_eval = Preprocess(ds, layout, augment=False)
    if so_far.rng is not None:
        if len(so_far.rng) == rt.world:
            restore_rng(so_far.rng[rt.rank], pre_train)
        else:
            notes.append(
                f"the checkpoint's generators are from {len(so_far.rng)} rank(s), not {rt.world}; "
                "the remaining epochs draw afresh"
            )

    if rt.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if so_far.start_epoch > 0:
            so_far.written = read_manifest(out_dir)
            reconcile(out_dir, so_far)
    log = _Log(out_dir / "train.log", rt.is_main, progress)
    log(
        f"train {len(train_data)} pairs ({train_data.n_defect} defect), validation "
        f"{len(val_data) if val_data else 0}; {spec.model.backbone.type}/{spec.model.classify.difference_module} "
        f"on {rt.device}{f' x{rt.world} ranks' if rt.distributed else ''}, {torch.get_num_threads()} thread(s), "
        f"epochs {so_far.start_epoch + 1}..{tr.num_epochs}"
    )
    for n in notes:
        log(f"note: {n}")

    total_pairs = len(sampler) * rt.world * max(0, tr.num_epochs - so_far.start_epoch)
    with Bar("train", total_pairs, enabled=progress) as bar:
        for epoch in range(so_far.start_epoch + 1, tr.num_epochs + 1):
            record = train_epoch(fit, epoch, sampler, loader, pre_train, bar)
            due = val_data is not None and (epoch % tr.validation_interval == 0 or epoch == tr.num_epochs)
            improved = validate(fit, record, val_data, pre_eval) if due and val_data is not None else False
            so_far.history.append(record)
            fit.rng = gather_objects(rt, rng_state(pre_train))  # type: ignore[assignment]
            if rt.is_main:
                save_epoch(fit, out_dir, record, improved, has_val=val_data is not None)
            log(epoch_line(record, tr.num_epochs, due, improved))

    if rt.is_main:
        finish(fit, out_dir, notes)
    barrier(rt)
    pairs_per_sec = so_far.pairs / so_far.seconds if so_far.seconds > 0 else 0.0
    seconds = time.perf_counter() - t_start
    log(
        f"[train] done · {so_far.epochs_run} epoch(s) in {seconds:.1f}s · {pairs_per_sec:.1f} pairs/s · "
        f"best epoch {so_far.best_epoch}"
    )
    best_path, latest = out_dir / "best_val.pth", out_dir / "latest.pth"
    used = disk_bytes(out_dir) if rt.is_main else 0
    return TrainResult(
        best_path,
        latest,
        so_far.epochs_run,
        seconds,
        pairs_per_sec,
        str(rt.device),
        notes,
        so_far.written,
        used,
    )


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
