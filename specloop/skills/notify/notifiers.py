"""Send one alert through every configured channel; a channel that fails never stops the caller.

Each channel is retried with a short backoff; a channel still failing is logged (secrets masked)
and the others still get the alert. The watcher calls :meth:`Notifiers.send` from its loop, so
``send`` returns in bounded time and raises only for a programming error (an unknown event).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from tenacity import Retrying, stop_after_attempt, wait_exponential

from specloop.ledger.redaction import collect_secrets, protect_logs, redact, redact_obj
from specloop.skills.notify.config import NotifySettings, load_settings
from specloop.skills.notify.events import EVENTS
from specloop.skills.notify.smtp import SmtpNotifier
from specloop.skills.notify.telegram import TelegramNotifier
from specloop.skills.notify.text import body
from specloop.skills.notify.webhook import WebhookNotifier

ATTEMPTS = 3
WAIT_S = 0.5

log = logging.getLogger("specloop.notify")


class Notifier(Protocol):
    name: str

    def deliver(self, payload: Mapping[str, object], text: str) -> None: ...


class Notifiers:
    """The configured channels, the events they get, the secrets to keep out of every record, a JSONL log."""

    def __init__(
        self,
        channels: Sequence[Notifier],
        secrets: frozenset[str],
        *,
        log_path: Path | None = None,
        attempts: int = ATTEMPTS,
        wait_s: float = WAIT_S,
        events: frozenset[str] = frozenset(EVENTS),
    ) -> None:
        self.channels = tuple(channels)
        self.events = events
        self.secrets = secrets
        self.log_path = log_path
        self.attempts = attempts
        self.wait_s = wait_s
        self._lock = threading.Lock()
        protect_logs(secrets)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.channels]

    def send(self, event: str, message: str, fields: Mapping[str, object]) -> None:
        """Deliver ``event`` to every channel; failures are retried, then logged, never raised."""
        if event not in EVENTS:
            raise ValueError(f"unknown notification event {event!r}; known: {', '.join(EVENTS)}")
        if event not in self.events:
            return
        plain = json.loads(json.dumps(dict(fields), default=str))
        payload = redact_obj(
            {
                "source": "specloop",
                "event": event,
                "message": message,
                "fields": plain,
                "time": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            self.secrets,
        )
        text = redact(body(event, message, plain), self.secrets)
        for channel in self.channels:
            self._deliver(channel, payload, text)

    def _deliver(self, channel: Notifier, payload: dict[str, object], text: str) -> None:
        attempts = 0
        error: str | None = None
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=self.wait_s, max=10 * self.wait_s),
                reraise=True,
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    channel.deliver(payload, text)
        except Exception as exc:  # any failure of a channel is logged; training goes on
            error = redact(f"{type(exc).__name__}: {exc}", self.secrets)
            log.warning(
                "notifier %s could not send %s after %d attempts: %s",
                channel.name,
                payload["event"],
                attempts,
                error,
            )
        else:
            log.info("notifier %s sent %s", channel.name, payload["event"])
        self._record(channel.name, payload, attempts, error)

    def _record(self, channel: str, payload: dict[str, object], attempts: int, error: str | None) -> None:
        if self.log_path is None:
            return
        line = {
            "time": payload["time"],
            "event": payload["event"],
            "channel": channel,
            "ok": error is None,
            "attempts": attempts,
            "error": error,
        }
        text = redact(json.dumps(line, ensure_ascii=False), self.secrets)
        with self._lock:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a", encoding="utf-8") as fh:
                fh.write(text + "\n")


def channels_for(settings: NotifySettings) -> list[Notifier]:
    """One notifier per configured channel, in a fixed order."""
    channels: list[Notifier] = []
    if settings.webhook is not None:
        channels.append(WebhookNotifier(settings.webhook))
    if settings.telegram is not None:
        channels.append(TelegramNotifier(settings.telegram))
    if settings.smtp is not None:
        channels.append(SmtpNotifier(settings.smtp))
    return channels


def secrets_of(settings: NotifySettings) -> frozenset[str]:
    """Every ``.env`` value, secret-named environment values, and the channels' own credentials."""
    found = set(collect_secrets(settings.file_values, os.environ))
    if settings.webhook is not None:
        found.add(settings.webhook.url)  # a webhook URL is its own credential (Slack, Teams, …)
    if settings.telegram is not None:
        found.add(settings.telegram.token)
    if settings.smtp is not None and settings.smtp.password is not None:
        found.add(settings.smtp.password)
    return frozenset(found)


def load_notifiers(
    env_file: Path | None,
    *,
    log_path: Path | None = None,
    attempts: int = ATTEMPTS,
    wait_s: float = WAIT_S,
) -> Notifiers:
    """The channels configured in ``env_file``; a bad setting is a :class:`SpecloopError` naming its key.

    ``log_path`` (e.g. ``results/watch/notifications.jsonl``) gets one redacted line per delivery.
    """
    settings = load_settings(env_file)
    return Notifiers(
        channels_for(settings),
        secrets_of(settings),
        log_path=log_path,
        attempts=attempts,
        wait_s=wait_s,
        events=settings.events,
    )
