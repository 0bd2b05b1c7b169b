"""Keep secrets (API keys, tokens, anything from ``.env``) out of records, errors and logs."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[REDACTED]"
# Shorter values (e.g. "1", "true") are config, not secrets, and masking them would garble text.
MIN_SECRET_LEN = 6
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
# Key-shaped strings we were not told about: OpenAI "sk-…", Anthropic "sk-ant-…", bearer tokens,
# Hugging Face "hf_…", GitHub "ghp_…" and friends, AWS access key ids, Slack tokens.
_KEY_SHAPED = re.compile(
    r"\bsk-[A-Za-z0-9_\-]{12,}|(?<=Bearer )[A-Za-z0-9._\-]{12,}|\bhf_[A-Za-z0-9]{20,}"
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}|\bAKIA[0-9A-Z]{16}\b|\bxox[abpr]-[A-Za-z0-9\-]{10,}"
)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every known secret, and anything shaped like an API key, masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _KEY_SHAPED.sub(MASK, text)


def redact_obj(obj: Any, secrets: Iterable[str]) -> Any:
    """A copy of a JSON-like structure with :func:`redact` applied to every string in it."""
    secrets = frozenset(secrets)
    if isinstance(obj, str):
        return redact(obj, secrets)
    if isinstance(obj, Mapping):
        return {redact(str(k), secrets): redact_obj(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v, secrets) for v in obj]
    return obj


def collect_secrets(env_file_values: Mapping[str, str | None], environ: Mapping[str, str]) -> frozenset[str]:
    """Every value from the ``.env`` file, plus environment values whose names look secret."""
    found = {v for v in env_file_values.values() if v}
    found |= {v for k, v in environ.items() if v and _SECRET_NAME.search(k)}
    return frozenset(s for s in found if len(s) >= MIN_SECRET_LEN)


_log_secrets: set[str] = set()
_log_lock = threading.Lock()
_installed = False


def protect_logs(secrets: Iterable[str]) -> None:
    """Redact ``secrets`` (and key-shaped strings) from every log record made from now on.

    The SDKs log request bodies at DEBUG under logger names of their own, so a filter on
    particular loggers or handlers would miss some; a record factory sees every record that
    passes its logger's level, whichever handler later writes it.
    """
    global _installed
    with _log_lock:
        _log_secrets.update(s for s in secrets if s and len(s) >= MIN_SECRET_LEN)
        if _installed:
            return
        base = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = base(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is the logging module's to report
                return record
            clean = redact(message, _log_secrets)
            if clean != message:
                record.msg, record.args = clean, None
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
