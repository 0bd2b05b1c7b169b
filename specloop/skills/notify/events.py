"""The alert events, declared once: what the watcher and the registry may announce."""

from __future__ import annotations

EVENTS = (
    "new_data",
    "training_started",
    "training_finished",
    "training_failed",
    "promoted",
    "rejected",
    "rolled_back",
    "resource_alarm",
)
