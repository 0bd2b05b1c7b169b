"""When the watcher may train: a daily time window and the machine's resource pressure."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path

from specloop.errors import SpecloopError

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Window:
    start: time
    end: time

    def contains(self, now: datetime) -> bool:
        t = now.time()
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end  # across midnight, e.g. 22:00-02:00

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_window(text: str | None) -> Window | None:
    """`HH:MM-HH:MM` (local time, may cross midnight); None means any time."""
    if text is None:
        return None
    m = _WINDOW.match(text.strip())
    if not m or text.strip()[:5] == text.strip()[6:]:
        raise SpecloopError(
            f"--window {text!r} is not HH:MM-HH:MM with two different 24-hour times (e.g. 02:00-06:00).",
            rule="window",
        )
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    return Window(time(h1, m1), time(h2, m2))


@dataclass(frozen=True)
class Limits:
    max_mem_pct: float = 85.0
    min_free_gb: float = 5.0

    def pressure(self, where: Path) -> str | None:
        """Why training should wait now (memory or disk), or None."""
        import psutil

        mem = psutil.virtual_memory().percent
        if mem > self.max_mem_pct:
            return f"memory in use {mem:.0f}% is over {self.max_mem_pct:.0f}%"
        free = shutil.disk_usage(where).free / 2**30
        if free < self.min_free_gb:
            return f"free disk {free:.1f} GB is under {self.min_free_gb:.1f} GB"
        return None
