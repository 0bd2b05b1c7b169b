"""Telegram's Bot API ``sendMessage``: POST ``{api}/bot<token>/sendMessage`` with ``chat_id`` and ``text``.

The token is part of the URL, so the URL itself never appears in what this module raises.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from specloop.skills.notify.config import TelegramSettings

TIMEOUT_S = 10.0
# Bot API limit on a message's text
MAX_TEXT = 4096


class TelegramError(RuntimeError):
    """The Bot API refused or failed a request (status and description only, never the URL)."""


class TelegramNotifier:
    name = "telegram"

    def __init__(self, settings: TelegramSettings) -> None:
        self.settings = settings

    def deliver(self, payload: Mapping[str, object], text: str) -> None:
        url = f"{self.settings.api}/bot{self.settings.token}/sendMessage"
        try:
            response = httpx.post(
                url, json={"chat_id": self.settings.chat_id, "text": text[:MAX_TEXT]}, timeout=TIMEOUT_S
            )
        except httpx.HTTPError as exc:
            raise TelegramError(f"Bot API request failed: {type(exc).__name__}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code != 200 or not isinstance(answer, dict) or answer.get("ok") is not True:
            description = answer.get("description", "") if isinstance(answer, dict) else ""
            raise TelegramError(f"Bot API answered {response.status_code} {description}".strip())
