"""B4: full-training guidance computed from tech.json's measured numbers, rendered for people, and
the check that the guidance's numbers still agree with tech.json."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from specloop.skills.scaffold.measure import BYTES_PER_PARAM, GPU_ASSUMPTION, TRAIN_STATE_BYTES_PER_PARAM
from specloop.skills.scaffold.tech import FULL_EPOCHS

GPU_SIZES_GB = (24, 48, 80)
MEMORY_HEADROOM = 0.8  # plan for 80 % of a GPU's memory
MAX_BATCH = 4096
WARMUP_FRACTION = 0.05
_BLOCK = re.compile(r"```json guidance-numbers\n(.*?)```", re.DOTALL)


def _pow2_floor(n: float) -> int:
    return 2 ** int(math.log2(n)) if n >= 1 else 0


def numbers(tech: dict[str, Any], *, base_lr: float, train_samples: int) -> dict[str, Any]:
    """Every number the guidance states, from the chosen candidate's measurements in tech.json:
    memory per sample (measured activations at the measured batch), the largest power-of-two batch
    per GPU size within 80 % of its memory, and the learning rate scaled linearly with the batch."""
    chosen = tech["chosen"]
    m = tech["measurements"][chosen]
    est = tech["estimates"][chosen]
    static_mb = m["params"] * BYTES_PER_PARAM / 2**20
    activations_mb = max(0.0, m["train_rss_delta_mb"] - m["params"] * TRAIN_STATE_BYTES_PER_PARAM / 2**20)
    context_mb = GPU_ASSUMPTION["cuda_context_mb"]
    per_sample_mb = max(activations_mb / m["batch_size"], 1e-3)
    batches = {}
    for gb in GPU_SIZES_GB:
        room = gb * 1024 * MEMORY_HEADROOM - static_mb - context_mb
        batch = min(MAX_BATCH, _pow2_floor(room / per_sample_mb))
        steps = math.ceil(train_samples / batch)
        batches[str(gb)] = {
            "batch_size": batch,
            "lr": round(base_lr * batch / m["batch_size"], 8),
            "steps_per_epoch": steps,
            "warmup_steps": max(1, round(WARMUP_FRACTION * steps * FULL_EPOCHS)),
            "memory_mb": round(static_mb + per_sample_mb * batch + context_mb, 1),
        }
    return {
        "chosen": chosen,
        "params": m["params"],
        "measured_batch_size": m["batch_size"],
        "base_lr": base_lr,
        "gpu_memory_mb_at_measured_batch": est["gpu_memory_mb"]["value"],
        "per_sample_mb": round(per_sample_mb, 4),
        "epochs": FULL_EPOCHS,
        "train_samples": train_samples,
        "cpu_train_seconds": est["cpu_train_seconds"]["value"],
        "gpu_train_seconds": est["gpu_train_seconds"]["value"],
        "batches": batches,
    }


def disagreements(stated: dict[str, Any], tech: dict[str, Any]) -> list[str]:
    """Where the guidance's numbers differ from what tech.json gives now (empty: they agree)."""
    expected = numbers(tech, base_lr=stated["base_lr"], train_samples=stated["train_samples"])
    out = []
    for key, value in expected.items():
        if stated.get(key) != value:
            out.append(f"{key}: guidance says {stated.get(key)!r}, tech.json gives {value!r}")
    est = tech["estimates"][tech["chosen"]]["gpu_memory_mb"]["value"]
    if abs(stated["gpu_memory_mb_at_measured_batch"] - est) > 1.0:
        out.append(f"gpu_memory_mb: guidance {stated['gpu_memory_mb_at_measured_batch']} vs tech.json {est}")
    return out


def read_numbers(path: Path) -> dict[str, Any]:
    m = _BLOCK.search(path.read_text(encoding="utf-8"))
    if m is None:
        raise ValueError(f"{path.name} holds no ```json guidance-numbers``` block")
    return json.loads(m.group(1))


def commands(n: dict[str, Any], *, data: str = "DATA_DIR") -> dict[str, str]:
    """Example commands: the 2-process CPU check, one node with 8 GPUs per size, two nodes."""
    b80 = n["batches"]["80"]
    out = {
        "cpu-2proc-check": (
            "torchrun --standalone --nproc_per_node 2 scripts/train.py --data data/mini --epochs 1 "
            "--device cpu --output outputs/ddp_check"
        ),
        "1gpu": (
            f"python scripts/train.py --data {data} --epochs {n['epochs']} --device cuda "
            f"--batch-size {n['batches']['24']['batch_size']} --lr {n['batches']['24']['lr']:g}"
        ),
    }
    for gb, b in n["batches"].items():
        world = 8
        out[f"1node-8gpu-{gb}gb"] = (
            f"torchrun --standalone --nproc_per_node {world} scripts/train.py --data {data} --epochs {n['epochs']} "
            f"--device cuda --batch-size {b['batch_size']} --lr {b['lr'] * world:g}"
        )
    out["2node-8gpu-80gb"] = (
        "torchrun --nnodes 2 --nproc_per_node 8 --node_rank $NODE_RANK --rdzv_backend c10d "
        f"--rdzv_endpoint $MASTER_ADDR:29500 scripts/train.py --data {data} --epochs {n['epochs']} "
        f"--device cuda --batch-size {b80['batch_size']} --lr {b80['lr'] * 16:g}"
    )
    return out


def render_guidance(
    project: str, n: dict[str, Any], *, one_epoch: dict[str, Any], ddp_check: dict[str, Any], metric: str
) -> str:
    cmds = commands(n)
    gpu_rows = [
        f"| {gb} GB | {b['batch_size']} | {b['memory_mb']:.0f} | {b['lr']:g} | {b['steps_per_epoch']} | "
        f"{b['warmup_steps']} |"
        for gb, b in n["batches"].items()
    ]
    ddp = "passed" if ddp_check.get("ok") else "FAILED"
    lines = [
        f"# {project}: full-training guidance",
        "",
        f"Candidate `{n['chosen']}` ({n['params']:,} parameters). Every number below is computed from "
        "`tech.json` (measured on this machine, or extrapolated there with its formula); a check "
        "compares the block at the end with `tech.json`.",
        "",
        "## Batch size per GPU",
        "",
        f"Measured: {n['gpu_memory_mb_at_measured_batch']} MB at batch {n['measured_batch_size']} "
        f"(extrapolated in tech.json), i.e. {n['per_sample_mb']} MB of activations per sample. The batch is "
        f"the largest power of two within {MEMORY_HEADROOM:.0%} of the GPU's memory (capped at {MAX_BATCH}).",
        "",
        "| GPU | batch per GPU | est. memory MB | lr (linear scaling) | steps/epoch (1 GPU) | warm-up steps |",
        "|---|---|---|---|---|---|",
        *gpu_rows,
        "",
        "## Learning-rate schedule",
        "",
        f"- base: lr {n['base_lr']:g} at batch {n['measured_batch_size']} (the config's); scale linearly with the "
        "global batch (batch per GPU × GPUs); a range of 0.5×–1× the scaled value is safe to search.",
        f"- warm-up: linear from 0 over the first {WARMUP_FRACTION:.0%} of all steps (table above, one GPU), "
        "then cosine decay to 1 % of the peak.",
        f"- epochs: {n['epochs']} (range 10–{n['epochs'] * 2}); stop early when the validation {metric} has not "
        "improved for 5 epochs.",
        "",
        "## Checkpoints",
        "",
        "- `train.py` writes `last.pt` every epoch and `best.pt` when the validation metric improves (rank 0 only).",
        "- keep `best.pt` and the last 3 `last.pt` copies; resume from `last.pt` after a pre-emption.",
        "",
        "## Augmentation",
        "",
        "- start with what the family's data module applies; add light geometric jitter (±10 % scale, ±10° "
        "rotation) and no colour changes for grayscale inputs; re-run the 1-epoch check after any change.",
        "",
        "## Monitoring points",
        "",
        f"- training loss per step (NaN or Inf stops the run: the `nan-loss` rule), validation {metric} per epoch,",
        "- samples/s per GPU against tech.json's measured rate, GPU memory against the table above,",
        "- the learning rate after warm-up, and the time per epoch.",
        "",
        "## Distributed training (torchrun)",
        "",
        "`scripts/train.py` runs under `torchrun`: DistributedDataParallel with NCCL on GPUs and gloo on CPUs, a "
        "DistributedSampler per rank, rank 0 evaluates and writes checkpoints. `--batch-size` is per process.",
        "",
        "| configuration | command |",
        "|---|---|",
        *[f"| {name} | `{cmd}` |" for name, cmd in cmds.items()],
        "",
        f"Checked here: `{cmds['cpu-2proc-check']}` {ddp} (exit {ddp_check.get('exit_code')}, "
        f"{ddp_check.get('seconds', 0):.1f}s, 2 CPU processes, gloo).",
        "",
        "## Time",
        "",
        f"- one epoch on the mini set here: {one_epoch.get('epoch_seconds', 0):.2f}s (measured by the 1-epoch run)",
        f"- full training on this CPU: {n['cpu_train_seconds']}s; on one GPU: {n['gpu_train_seconds']}s "
        "(both extrapolated in tech.json; the GPU figure rests on an assumed speed-up)",
        "",
        "## Readiness checklist",
        "",
        "- [x] 1-epoch run on the mini set passed and wrote a checkpoint (bugfix_report.md)",
        f"- [{'x' if ddp_check.get('ok') else ' '}] 2-process torchrun check passed",
        "- [ ] the full dataset is in `DATA_DIR/{train,val}/<class>/` (see README.md)",
        "- [ ] the GPU environment is installed (`debug-gpu`, venv.md) and `torch.cuda.is_available()` is true",
        "- [ ] the batch size for your GPU is taken from the table, and the lr scaled with the global batch",
        "- [ ] checkpoints go to storage that survives the job",
        "",
        "```json guidance-numbers",
        json.dumps(n, indent=1, sort_keys=True),
        "```",
    ]
    return "\n".join(lines) + "\n"
