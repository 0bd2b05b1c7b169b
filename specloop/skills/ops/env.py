"""What this machine offers a training run: device, threads, memory, disk."""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from specloop.skills.aoi.spec import ExperimentSpec

# Activation memory of a small CNN per input pixel, forward + backward, float32, both siamese
# sides: a deliberately generous rule of thumb, used only to warn before a run starts.
BYTES_PER_PIXEL_TRAIN = 4 * 3 * 60


@dataclass(frozen=True)
class Environment:
    device: str
    device_name: str
    cpu_threads: int
    memory_free_gb: float
    disk_free_gb: float
    batch_memory_gb: float
    batch_fits: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _free_memory_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def probe(spec: ExperimentSpec, results_dir: Path) -> Environment:
    ds = spec.dataset.classify
    n_lights = max(len(spec.lights()), 1)
    pixels = ds.image_width * ds.image_height * n_lights * 2
    batch_bytes = ds.batch_size * pixels * BYTES_PER_PIXEL_TRAIN
    if torch.cuda.is_available() and spec.train.device != "cpu":
        device, name = "cuda", torch.cuda.get_device_name(0)
        free, _ = torch.cuda.mem_get_info()
    else:
        device, name, free = "cpu", f"CPU ({os.cpu_count()} cores)", _free_memory_bytes()
    results_dir.mkdir(parents=True, exist_ok=True)
    disk = shutil.disk_usage(results_dir).free
    return Environment(
        device=device,
        device_name=name,
        cpu_threads=torch.get_num_threads(),
        memory_free_gb=round(free / 1e9, 2),
        disk_free_gb=round(disk / 1e9, 2),
        batch_memory_gb=round(batch_bytes / 1e9, 3),
        batch_fits=batch_bytes < 0.5 * free,
    )
