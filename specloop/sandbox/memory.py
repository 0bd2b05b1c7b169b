"""Memory limits for local commands, and what measurements showed about the alternatives.

Measured here (torch 2.14.1+cu130 on a CPU-only machine): ``import torch, timm`` plus a resnet18
forward pass maps 3.6 GB of virtual memory for a 0.7 GB resident set. ``RLIMIT_AS`` at 1 or 2 GB
breaks the import itself ("libtorch_cpu.so: failed to map segment from shared object"), so it
cannot be the limit. ``RLIMIT_DATA`` lets torch import but makes an allocation fail inside the
program (a ``MemoryError`` it may catch, or a C++ exception), counts each process separately and
leaves no trace a supervisor can read; it is not used either.

Two enforcers, the first that works:

``cgroup-v1``
    As root with the cgroup-v1 memory controller writable: a child cgroup of our own with
    ``memory.limit_in_bytes`` (and the same ``memsw`` limit, so no swap), joined by the command
    before it starts. The kernel counts the command and all its children and OOM-kills inside the
    group; ``memory.oom_control``'s ``oom_kill`` count says a breach happened.
``pss-poll``
    Otherwise: the supervisor sums the proportional set size (``/proc/PID/smaps_rollup``, so pages
    that forked workers share are counted once) of every process in the command's session every
    0.1 s and kills the session when the sum passes the limit. A burst faster than one poll can
    overshoot briefly, and a process that leaves the session (``setsid``) is not counted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

_CGROUP_V1_ROOT = Path("/sys/fs/cgroup/memory")


def _own_v1_memory_cgroup() -> Path | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if "memory" in controllers.split(","):
            nested = _CGROUP_V1_ROOT / rel.lstrip("/")
            return nested if nested.is_dir() else _CGROUP_V1_ROOT
    return None


class MemoryCgroup:
    """A cgroup-v1 memory group made for one command and removed after it."""

    name = "cgroup-v1"

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, memory_mb: int) -> MemoryCgroup | None:
        """A new group limited to ``memory_mb``, or None where cgroups cannot be written here."""
        parent = _own_v1_memory_cgroup() if os.geteuid() == 0 else None
        if parent is None:
            return None
        path = parent / f"specloop-sandbox-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir()
        except OSError:
            return None
        group = cls(path)
        try:
            limit = str(memory_mb << 20)
            (path / "memory.limit_in_bytes").write_text(limit)
            if (path / "memory.memsw.limit_in_bytes").exists():
                (path / "memory.memsw.limit_in_bytes").write_text(limit)
        except OSError:
            group.remove()
            return None
        return group

    @classmethod
    def usable(cls) -> bool:
        """Whether memory groups can be made here (one is made and removed to find out)."""
        group = cls.create(16)
        if group is None:
            return False
        group.remove()
        return True

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this group for passing the limit."""
        for line in (self.path / "memory.oom_control").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value) > 0
        return int((self.path / "memory.failcnt").read_text()) > 0

    def _pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def kill_all(self) -> None:
        """SIGKILL whatever is still in the group (a process that left the command's session too)."""
        for pid in self._pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Kill what is left and remove the group; a group the kernel still holds is retried briefly."""
        for _ in range(50):
            self.kill_all()
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state ppid pgrp session ...
        if int(stat.rpartition(")")[2].split()[3]) == sid:
            pids.append(int(entry.name))
    return pids


def _pss_bytes(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def session_pss_bytes(sid: int) -> int:
    """The proportional set size of every process in session ``sid``, in bytes."""
    return sum(_pss_bytes(pid) for pid in _session_pids(sid))
