"""How an alert reads in a chat message or an e-mail: one headline, then one line per field."""

from __future__ import annotations

from collections.abc import Mapping


def headline(event: str, message: str) -> str:
    return f"[specloop] {event}: {message}"


def body(event: str, message: str, fields: Mapping[str, object]) -> str:
    lines = [headline(event, message)]
    lines += [f"{key}: {value}" for key, value in fields.items()]
    return "\n".join(lines)
