"""Notifier settings from a workspace's ``.env``: which channels are on, checked before any is used.

Every problem names the ``.env`` key (and its line), never its value: values are secrets.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from specloop.errors import SpecloopError
from specloop.skills.notify.events import EVENTS

TELEGRAM_API = "https://api.telegram.org"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class WebhookSettings:
    url: str


@dataclass(frozen=True)
class TelegramSettings:
    token: str
    chat_id: str
    api: str


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str | None
    password: str | None
    starttls: bool


@dataclass(frozen=True)
class NotifySettings:
    webhook: WebhookSettings | None
    telegram: TelegramSettings | None
    smtp: SmtpSettings | None
    # the events sent (SPECLOOP_NOTIFY_EVENTS; default: all)
    events: frozenset[str]
    # every value read from the file, for redaction
    file_values: Mapping[str, str]


class _Source:
    """The merged values (the environment wins, as with ``load_dotenv``) and where each key sits."""

    def __init__(self, env_file: Path | None) -> None:
        self.env_file = env_file if env_file is not None and env_file.is_file() else None
        raw = dotenv_values(self.env_file) if self.env_file is not None else {}
        self.file_values = {k: v for k, v in raw.items() if v is not None}
        self.lines = (
            self.env_file.read_text(encoding="utf-8", errors="replace").splitlines() if self.env_file else []
        )

    def get(self, key: str) -> str | None:
        value = os.environ.get(key, self.file_values.get(key))
        return value.strip() if value is not None and value.strip() else None

    def error(self, key: str, rule_text: str) -> SpecloopError:
        where = "the environment"
        if self.env_file is not None and key not in os.environ:
            pattern = re.compile(rf"^\s*(export\s+)?{re.escape(key)}\s*=")
            line = next((i for i, text in enumerate(self.lines, 1) if pattern.match(text)), None)
            where = f"{self.env_file}:{line}" if line else str(self.env_file)
        return SpecloopError(f"{where}: {key} {rule_text}", rule="notifier-config")


def _url(src: _Source, key: str, default: str | None = None) -> str | None:
    value = src.get(key) or default
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise src.error(key, "is not an http(s) URL")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise src.error(key, "is not an http(s) URL (its port is not a number)") from None
    return value.rstrip("/")


def _flag(src: _Source, key: str) -> bool:
    value = (src.get(key) or "").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise src.error(key, "must be true or false")


def _smtp(src: _Source) -> SmtpSettings | None:
    host = src.get("SPECLOOP_SMTP_HOST")
    if host is None:
        return None
    starttls = _flag(src, "SPECLOOP_SMTP_STARTTLS")
    port_text = src.get("SPECLOOP_SMTP_PORT")
    if port_text is None:
        port = 587 if starttls else 25
    elif not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise src.error("SPECLOOP_SMTP_PORT", "is not a port number (1-65535)")
    else:
        port = int(port_text)
    sender = src.get("SPECLOOP_SMTP_FROM")
    if sender is None or "@" not in sender:
        raise src.error("SPECLOOP_SMTP_FROM", "must be an e-mail address when SPECLOOP_SMTP_HOST is set")
    recipients = tuple(a.strip() for a in (src.get("SPECLOOP_SMTP_TO") or "").split(",") if a.strip())
    if not recipients or any("@" not in a for a in recipients):
        raise src.error(
            "SPECLOOP_SMTP_TO", "must list e-mail addresses (comma-separated) when SPECLOOP_SMTP_HOST is set"
        )
    user, password = src.get("SPECLOOP_SMTP_USER"), src.get("SPECLOOP_SMTP_PASSWORD")
    if (user is None) != (password is None):
        missing = "SPECLOOP_SMTP_PASSWORD" if password is None else "SPECLOOP_SMTP_USER"
        raise src.error(
            missing, "is missing: SMTP login needs both SPECLOOP_SMTP_USER and SPECLOOP_SMTP_PASSWORD"
        )
    return SmtpSettings(host, port, sender, recipients, user, password, starttls)


def _telegram(src: _Source) -> TelegramSettings | None:
    token, chat_id = src.get("SPECLOOP_TELEGRAM_TOKEN"), src.get("SPECLOOP_TELEGRAM_CHAT_ID")
    if token is None and chat_id is None:
        return None
    if token is None or chat_id is None:
        missing = "SPECLOOP_TELEGRAM_TOKEN" if token is None else "SPECLOOP_TELEGRAM_CHAT_ID"
        raise src.error(
            missing, "is missing: Telegram needs both SPECLOOP_TELEGRAM_TOKEN and SPECLOOP_TELEGRAM_CHAT_ID"
        )
    if any(c.isspace() or c in "/?#" for c in token):
        raise src.error("SPECLOOP_TELEGRAM_TOKEN", "is not a bot token (it has spaces or URL characters)")
    api = _url(src, "SPECLOOP_TELEGRAM_API", TELEGRAM_API)
    assert api is not None
    return TelegramSettings(token, chat_id, api)


def _events(src: _Source) -> frozenset[str]:
    value = src.get("SPECLOOP_NOTIFY_EVENTS")
    if value is None:
        return frozenset(EVENTS)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in EVENTS]
    if unknown or not names:
        raise src.error(
            "SPECLOOP_NOTIFY_EVENTS",
            f"names unknown events ({', '.join(unknown) or 'none given'}); known: {', '.join(EVENTS)}",
        )
    return frozenset(names)


def load_settings(env_file: Path | None) -> NotifySettings:
    """The notifier settings in ``env_file`` (and the environment); none configured is valid."""
    src = _Source(env_file)
    webhook = _url(src, "SPECLOOP_WEBHOOK_URL")
    return NotifySettings(
        webhook=WebhookSettings(webhook) if webhook else None,
        telegram=_telegram(src),
        smtp=_smtp(src),
        events=_events(src),
        file_values=src.file_values,
    )
