"""One JSON-ready picture of the registry and the watcher, for the dashboard and `models list`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from specloop.skills.registry.journal import pause_reason, read_state, recent_events
from specloop.skills.registry.layout import WatchLayout

VERSION_KEYS = ("version", "status", "created", "metrics", "data_hash", "model_hash")


def resources(ws: Path) -> dict[str, float]:
    import psutil

    disk = shutil.disk_usage(WatchLayout(ws).results if WatchLayout(ws).results.exists() else ws)
    return {"mem_pct": float(psutil.virtual_memory().percent), "disk_free_gb": round(disk.free / 2**30, 2)}


def registry_versions(ws: Path) -> list[dict[str, Any]]:
    """The registry's versions, newest first; [] when no store was ever made (nothing is created)."""
    from specloop.skills.registry.store import ModelRegistry, store_exists

    if not store_exists(ws):
        return []
    return ModelRegistry(ws).versions()


def watcher_view(ws: Path) -> dict[str, Any]:
    """The watcher as the dashboard shows it; a watcher whose process is gone (killed) reads stopped."""
    import psutil

    state = read_state(ws)
    if state.get("state", "stopped") != "stopped" and not psutil.pid_exists(int(state.get("pid") or 0) or -1):
        state = state | {"state": "stopped", "reason": "the watcher is not running"}
    reason = pause_reason(ws)
    paused = reason is not None
    return {
        "state": "paused" if paused and state.get("state") != "stopped" else state.get("state", "stopped"),
        "paused": paused,
        "reason": reason if paused else str(state.get("reason", "")),
        "last_round": state.get("last_round"),
        "processed_rows": int(state.get("processed_rows", 0)),
    }


def snapshot(ws: Path) -> dict[str, Any]:
    """Champion, versions (newest first), watcher state, the last 50 events and resource use."""
    ws = Path(ws)
    versions = [{k: v[k] for k in VERSION_KEYS} for v in registry_versions(ws)]
    champion = next((v for v in versions if v["status"] == "champion"), None)
    events = [
        {"time": e.get("time", ""), "event": e.get("event", ""), "message": e.get("message", "")}
        for e in recent_events(ws)
    ]
    return {
        "champion": champion,
        "versions": versions,
        "watcher": watcher_view(ws),
        "events": events,
        "resources": resources(ws),
    }
