"""Alerts through pluggable notifiers (JSON webhook, Telegram Bot API, SMTP e-mail) set in ``.env``."""

from specloop.skills.notify.events import EVENTS
from specloop.skills.notify.notifiers import Notifier, Notifiers, load_notifiers

__all__ = ["EVENTS", "Notifier", "Notifiers", "load_notifiers"]
