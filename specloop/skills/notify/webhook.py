"""A generic JSON webhook: one POST per alert; any 2xx is delivered."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from specloop.skills.notify.config import WebhookSettings

TIMEOUT_S = 10.0


class WebhookNotifier:
    name = "webhook"

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings

    def deliver(self, payload: Mapping[str, object], text: str) -> None:
        response = httpx.post(self.settings.url, json=dict(payload), timeout=TIMEOUT_S)
        response.raise_for_status()
