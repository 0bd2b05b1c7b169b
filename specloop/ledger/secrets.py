"""Secrets from the workspace `.env` and the environment, and their redaction from anything written."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from dotenv import dotenv_values

REDACTED = "[REDACTED]"
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
# Shapes of common credentials, caught even when they did not come from a known variable.
_SECRET_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}|sk-ant-[A-Za-z0-9_\-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9\-]{10,})"
)
MIN_SECRET_LEN = 6


def load_secret_values(env_file: Path | None) -> list[str]:
    """Every value of `.env`, plus secret-named environment variables; longest first."""
    values: set[str] = set()
    if env_file is not None and env_file.is_file():
        values.update(v for v in dotenv_values(env_file).values() if v)
    values.update(v for k, v in os.environ.items() if _SECRET_NAME.search(k) and v)
    return sorted((v for v in values if len(v) >= MIN_SECRET_LEN), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    return _SECRET_SHAPES.sub(REDACTED, text)
