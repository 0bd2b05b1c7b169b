"""What the page shows: the registry's snapshot with secrets masked, plus the alert channels' names."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from specloop.ledger.redaction import redact_obj


def safe_snapshot(snapshot: Mapping[str, Any], secrets: frozenset[str]) -> dict[str, Any]:
    """The snapshot with every string that holds a secret masked (the page and the API show this)."""
    return redact_obj(dict(snapshot), secrets)


def short(value: object, n: int = 12) -> str:
    return str(value)[:n] if value else "—"


def percent(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return "—"
    return f"{value:.2%}"


def when(value: object) -> str:
    """An ISO time or a unix timestamp, as UTC to the second."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value) if value else "—"
