"""E-mail through an SMTP server (smtplib), with STARTTLS and login when configured."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage

from specloop.skills.notify.config import SmtpSettings

TIMEOUT_S = 10.0


class SmtpNotifier:
    name = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def deliver(self, payload: Mapping[str, object], text: str) -> None:
        s = self.settings
        mail = EmailMessage()
        mail["Subject"] = text.splitlines()[0]
        mail["From"] = s.sender
        mail["To"] = ", ".join(s.recipients)
        mail.set_content(text)
        with smtplib.SMTP(s.host, s.port, timeout=TIMEOUT_S) as server:
            if s.starttls:
                server.starttls(context=ssl.create_default_context())
            if s.user is not None and s.password is not None:
                server.login(s.user, s.password)
            server.send_message(mail)
