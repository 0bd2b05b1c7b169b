"""ChangeNet throughput: specloop's train/infer loops against a plain hand-written timm loop.

Both sides use the same backbone, batch size, joined-image resolution, thread count and the same
decoded images, measured in one run, alternating, best of `--rounds`. The plain loop is what a
person writes in ten minutes: a timm backbone (features_only, same as specloop's), both sides
through it, pooled-feature difference, a linear layer, cross-entropy, AdamW; images pre-decoded
to tensors, a random permutation per epoch, no augmentation.

    .venv/bin/python benchmarks/changenet_throughput.py [WORKSPACE] [--epochs 2] [--threads 2]

Without WORKSPACE a small synthetic workspace is generated in a temp dir.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from specloop.skills.aoi.spec import load_spec
from specloop.skills.changenet.api import infer, train
from specloop.skills.changenet.data import ImageLayout, PairDataset, Preprocess
from specloop.skills.changenet.train import dataset_paths


class PlainSiamese(torch.nn.Module):
    def __init__(self, backbone: str) -> None:
        super().__init__()
        self.backbone = timm.create_model(backbone, features_only=True, pretrained=False)
        self.fc = torch.nn.Linear(self.backbone.feature_info.channels()[-1], 2)

    def forward(self, g: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        fg = self.backbone(g)[-1].mean(dim=(2, 3))
        ft = self.backbone(t)[-1].mean(dim=(2, 3))
        return self.fc((fg - ft).abs())


def plain_train(
    golden: torch.Tensor, test: torch.Tensor, labels: torch.Tensor, backbone: str, bs: int, epochs: int
) -> float:
    torch.manual_seed(0)
    model = PlainSiamese(backbone)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    n = labels.shape[0]
    t0 = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(n).split(bs):
            loss = F.cross_entropy(model(golden[idx], test[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return n * epochs / (time.perf_counter() - t0)


@torch.inference_mode()
def plain_infer(golden: torch.Tensor, test: torch.Tensor, backbone: str, bs: int) -> float:
    model = PlainSiamese(backbone).eval()
    t0 = time.perf_counter()
    for start in range(0, golden.shape[0], bs):
        model(golden[start : start + bs], test[start : start + bs]).softmax(1)
    return golden.shape[0] / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", nargs="?", type=Path)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory(prefix="cn_bench_")
    ws = args.workspace
    if ws is None:
        from specloop.skills.aoi.synth import synthesize_workspace

        ws = Path(tmp.name) / "ws"
        synthesize_workspace(ws, size="small", seed=0, progress=False)
    spec_path = ws / "specs" / "baseline_spec.yaml"
    common = [
        f"train.num_epochs={args.epochs}",
        "train.checkpoint_interval=1000",
        "train.validation_interval=1000",
    ]
    spec_noaug = load_spec(spec_path, [*common, "dataset.classify.augmentation_config.augment=false"])
    spec_aug = load_spec(spec_path, common)
    ds = spec_noaug.dataset.classify
    layout = ImageLayout.from_config(ds)
    csv, images = dataset_paths(spec_noaug, ws, "train_dataset")  # type: ignore[misc]
    data = PairDataset.from_csv(csv, images, layout)
    golden, test = Preprocess(ds, layout, augment=False)(data.__getitems__(range(len(data)))[0])
    golden, test = golden.contiguous(), test.contiguous()
    labels = data.labels
    backbone, bs = spec_noaug.model.backbone.type, ds.batch_size
    res = f"{golden.shape[-2]}x{golden.shape[-1]}"

    best: dict[str, float] = {}
    out = Path(tmp.name)
    for r in range(args.rounds):
        measured = {
            "plain train": plain_train(golden, test, labels, backbone, bs, args.epochs),
            "specloop train": train(spec_noaug, ws, out / f"t{r}", progress=False).pairs_per_sec,
            "specloop train (spec augmentation)": train(
                spec_aug, ws, out / f"a{r}", progress=False
            ).pairs_per_sec,
            "plain infer": plain_infer(golden, test, backbone, bs),
        }
        for name, value in measured.items():
            best[name] = max(best.get(name, 0.0), value)
        t0 = time.perf_counter()
        infer(spec_noaug, ws, out / f"t{r}" / "latest.pth", csv, images, out / f"i{r}.csv", progress=False)
        best["specloop infer"] = max(best.get("specloop infer", 0.0), len(data) / (time.perf_counter() - t0))

    table = Table(
        title=f"ChangeNet throughput · {backbone} · batch {bs} · {res} px joined ({len(layout.lights)} lights) · "
        f"{args.threads} threads · {len(data)} pairs x {args.epochs} epochs · best of {args.rounds}"
    )
    for col in ("loop", "pairs/s", "vs plain"):
        table.add_column(col, justify="right" if col != "loop" else "left")
    for name in (
        "plain train",
        "specloop train",
        "specloop train (spec augmentation)",
        "plain infer",
        "specloop infer",
    ):
        ref = best["plain train" if "train" in name else "plain infer"]
        table.add_row(name, f"{best[name]:.1f}", f"{best[name] / ref:.2f}x")
    Console().print(table)
    print(
        "note: specloop train pairs/s counts the training loop (data, augmentation, forward, backward, step);"
    )
    print("      specloop infer includes loading the checkpoint and decoding the CSV's images.")
    tmp.cleanup()


if __name__ == "__main__":
    main()
