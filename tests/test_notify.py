"""Alerts reach real loopback peers speaking each protocol — a webhook receiver, an HTTP server
answering like Telegram's Bot API, an SMTP server (aiosmtpd) with login — and a failing peer is
retried, logged and never raised. Planted secrets never reach a file under results/ or a log."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from specloop.errors import SpecloopError
from specloop.skills.notify import EVENTS, load_notifiers

TOKEN = "424242:PLANTED-bot-token-Zq8x"
PASSWORD = "PLANTED-smtp-password-77"
HOOK_SECRET = "PLANTED-hook-path-5c1"
CHAT_ID = "-100123"
SMTP_USER = "alerts"
SECRETS = (TOKEN, PASSWORD, HOOK_SECRET)


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment overrides `.env`; a developer's own settings must not leak into these tests."""
    import os

    for key in list(os.environ):
        if key.startswith(("SPECLOOP_WEBHOOK", "SPECLOOP_TELEGRAM", "SPECLOOP_SMTP", "SPECLOOP_NOTIFY")):
            monkeypatch.delenv(key)


@dataclass
class HttpPeer:
    """A webhook receiver and a Bot API look-alike on one loopback port; `/fail` always answers 500."""

    port: int
    requests: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hits(self, path: str) -> list[Any]:
        return [body for p, body in self.requests if p == path]


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    peer = HttpPeer(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            peer.requests.append((self.path, body))
            if self.path == "/fail":
                self._answer(500, {"error": "down"})
            elif self.path == f"/bot{TOKEN}/sendMessage":
                result = {
                    "message_id": len(peer.requests),
                    "chat": {"id": int(CHAT_ID)},
                    "text": body["text"],
                }
                self._answer(200, {"ok": True, "result": result})
            elif self.path.startswith("/bot"):
                self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            elif self.path == f"/hook/{HOOK_SECRET}":
                self._answer(204, None)
            else:
                self._answer(404, {"error": "no such path"})

        def _answer(self, status: int, payload: Any) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    peer.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield peer
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)


class Mailbox:
    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bytes]] = []
        self.logins: list[tuple[str, bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login.decode() == SMTP_USER
        ok = ok and data.password.decode() == PASSWORD
        self.logins.append((data.login.decode() if isinstance(data, LoginPassword) else "", ok))
        return AuthResult(success=ok, handled=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_peer() -> Iterator[tuple[int, Mailbox]]:
    box = Mailbox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=box.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield controller.port, box
    controller.stop()


def _workspace(tmp_path: Path, env: dict[str, str]) -> Path:
    ws = tmp_path / "ws"
    (ws / "results").mkdir(parents=True)
    (ws / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
    return ws


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _assert_no_secret(ws: Path, log_text: str) -> None:
    files = _files_under(ws / "results")
    assert files, "the run wrote nothing under results/"
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        for secret in SECRETS:
            assert secret not in text, f"{secret} in {path}"
    for secret in SECRETS:
        assert secret not in log_text


def test_alerts_reach_each_protocol_and_no_secret_is_written(
    tmp_path: Path, http_peer: HttpPeer, smtp_peer: tuple[int, Mailbox], caplog: pytest.LogCaptureFixture
) -> None:
    smtp_port, box = smtp_peer
    ws = _workspace(
        tmp_path,
        {
            "SPECLOOP_WEBHOOK_URL": f"{http_peer.base}/hook/{HOOK_SECRET}",
            "SPECLOOP_TELEGRAM_TOKEN": TOKEN,
            "SPECLOOP_TELEGRAM_CHAT_ID": CHAT_ID,
            "SPECLOOP_TELEGRAM_API": http_peer.base,
            "SPECLOOP_SMTP_HOST": "127.0.0.1",
            "SPECLOOP_SMTP_PORT": str(smtp_port),
            "SPECLOOP_SMTP_USER": SMTP_USER,
            "SPECLOOP_SMTP_PASSWORD": PASSWORD,
            "SPECLOOP_SMTP_FROM": "specloop@line.example",
            "SPECLOOP_SMTP_TO": "qa@line.example, ops@line.example",
        },
    )
    caplog.set_level(logging.DEBUG)
    log_path = ws / "results" / "watch" / "notifications.jsonl"
    notifiers = load_notifiers(ws / ".env", log_path=log_path)
    assert notifiers.names == ["webhook", "telegram", "email"]

    notifiers.send("promoted", "v1765000000_ab12 is champion", {"golden_far": 0.02, "model": Path("m.pt")})
    # a secret slipped into a message by a caller is masked on the wire too
    notifiers.send("training_failed", f"loss is NaN (token {TOKEN})", {"attempt": 2})

    hooks = http_peer.hits(f"/hook/{HOOK_SECRET}")
    assert [h["event"] for h in hooks] == ["promoted", "training_failed"]
    assert hooks[0]["message"] == "v1765000000_ab12 is champion"
    assert hooks[0]["fields"] == {"golden_far": 0.02, "model": "m.pt"}
    assert TOKEN not in json.dumps(hooks[1])

    sent = http_peer.hits(f"/bot{TOKEN}/sendMessage")
    assert [m["chat_id"] for m in sent] == [CHAT_ID, CHAT_ID]
    assert sent[0]["text"].startswith("[specloop] promoted: v1765000000_ab12 is champion")
    assert "golden_far: 0.02" in sent[0]["text"]

    assert box.logins == [(SMTP_USER, True), (SMTP_USER, True)]
    assert [(frm, to) for frm, to, _ in box.mails] == [
        ("specloop@line.example", ["qa@line.example", "ops@line.example"])
    ] * 2
    mail = message_from_bytes(box.mails[0][2])
    assert mail["Subject"] == "[specloop] promoted: v1765000000_ab12 is champion"
    assert "golden_far: 0.02" in mail.get_payload()

    lines = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    assert [(r["event"], r["channel"], r["ok"]) for r in lines] == [
        (e, c, True) for e in ("promoted", "training_failed") for c in ("webhook", "telegram", "email")
    ]
    assert any("sendMessage" in r.getMessage() for r in caplog.records), "httpx did not log the request"
    _assert_no_secret(ws, caplog.text)


@pytest.fixture
def tls_smtp_peer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, Mailbox]]:
    """An SMTP server that requires STARTTLS before login, with a self-signed certificate the client trusts."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what ssl.create_default_context() trusts
    box = Mailbox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=box.authenticate,
        tls_context=context,
        require_starttls=True,
    )
    controller.start()
    yield controller.port, box
    controller.stop()


def test_email_logs_in_after_starttls_and_fails_cleanly_without_it(
    tmp_path: Path, tls_smtp_peer: tuple[int, Mailbox]
) -> None:
    port, box = tls_smtp_peer
    env = {
        "SPECLOOP_SMTP_HOST": "127.0.0.1",
        "SPECLOOP_SMTP_PORT": str(port),
        "SPECLOOP_SMTP_USER": SMTP_USER,
        "SPECLOOP_SMTP_PASSWORD": PASSWORD,
        "SPECLOOP_SMTP_FROM": "specloop@line.example",
        "SPECLOOP_SMTP_TO": "qa@line.example",
    }
    plain = _workspace(tmp_path / "plain", {**env, "SPECLOOP_SMTP_STARTTLS": "false"})
    log_path = plain / "results" / "notifications.jsonl"
    load_notifiers(plain / ".env", log_path=log_path, attempts=1).send("rolled_back", "back to v1", {})
    (line,) = [json.loads(s) for s in log_path.read_text(encoding="utf-8").splitlines()]
    # before STARTTLS the server offers no AUTH, so the password never crosses in the clear
    assert not line["ok"] and "AUTH extension not supported" in line["error"]
    assert box.mails == [] and box.logins == []

    tls = _workspace(tmp_path / "tls", {**env, "SPECLOOP_SMTP_STARTTLS": "true"})
    log_path = tls / "results" / "notifications.jsonl"
    load_notifiers(tls / ".env", log_path=log_path, attempts=1).send(
        "rolled_back", "back to v1", {"to": "v1"}
    )
    assert box.logins == [(SMTP_USER, True)]
    assert message_from_bytes(box.mails[0][2])["Subject"] == "[specloop] rolled_back: back to v1"
    _assert_no_secret(plain, "")
    _assert_no_secret(tls, "")


def test_a_failing_peer_is_retried_then_logged_and_send_returns(
    tmp_path: Path, http_peer: HttpPeer, caplog: pytest.LogCaptureFixture
) -> None:
    refused = _free_port()
    ws = _workspace(
        tmp_path,
        {
            "SPECLOOP_WEBHOOK_URL": f"{http_peer.base}/fail",
            "SPECLOOP_TELEGRAM_TOKEN": TOKEN,
            "SPECLOOP_TELEGRAM_CHAT_ID": CHAT_ID,
            "SPECLOOP_TELEGRAM_API": f"http://127.0.0.1:{refused}",
            "SPECLOOP_SMTP_HOST": "127.0.0.1",
            "SPECLOOP_SMTP_PORT": str(refused),
            "SPECLOOP_SMTP_USER": SMTP_USER,
            "SPECLOOP_SMTP_PASSWORD": PASSWORD,
            "SPECLOOP_SMTP_FROM": "specloop@line.example",
            "SPECLOOP_SMTP_TO": "qa@line.example",
        },
    )
    caplog.set_level(logging.DEBUG)
    log_path = ws / "results" / "watch" / "notifications.jsonl"
    notifiers = load_notifiers(ws / ".env", log_path=log_path, attempts=3, wait_s=0.01)

    notifiers.send("resource_alarm", "free disk 3.1 GB < 5 GB", {"disk_free_gb": 3.1})

    assert len(http_peer.hits("/fail")) == 3
    lines = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    assert [(r["channel"], r["ok"], r["attempts"]) for r in lines] == [
        ("webhook", False, 3),
        ("telegram", False, 3),
        ("email", False, 3),
    ]
    assert "500" in lines[0]["error"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "specloop.notify"]
    assert len(warnings) == 3 and all("could not send resource_alarm after 3 attempts" in w for w in warnings)
    _assert_no_secret(ws, caplog.text)


def test_a_refusing_bot_api_is_a_failure_not_a_delivery(tmp_path: Path, http_peer: HttpPeer) -> None:
    ws = _workspace(
        tmp_path,
        {
            "SPECLOOP_TELEGRAM_TOKEN": "999:wrong-token-abcdef",
            "SPECLOOP_TELEGRAM_CHAT_ID": CHAT_ID,
            "SPECLOOP_TELEGRAM_API": http_peer.base,
        },
    )
    log_path = ws / "results" / "notifications.jsonl"
    load_notifiers(ws / ".env", log_path=log_path, attempts=2, wait_s=0.01).send("new_data", "12 rows", {})
    (line,) = [json.loads(s) for s in log_path.read_text(encoding="utf-8").splitlines()]
    assert (line["ok"], line["attempts"]) == (False, 2)
    assert "401 Unauthorized" in line["error"] and "wrong-token" not in line["error"]


def test_only_the_chosen_events_are_sent(tmp_path: Path, http_peer: HttpPeer) -> None:
    ws = _workspace(
        tmp_path,
        {
            "SPECLOOP_WEBHOOK_URL": f"{http_peer.base}/hook/{HOOK_SECRET}",
            "SPECLOOP_NOTIFY_EVENTS": "promoted, rolled_back",
        },
    )
    notifiers = load_notifiers(ws / ".env")
    for event in ("new_data", "promoted", "training_started", "rolled_back"):
        notifiers.send(event, event.replace("_", " "), {})
    assert [h["event"] for h in http_peer.hits(f"/hook/{HOOK_SECRET}")] == ["promoted", "rolled_back"]


def test_no_channel_configured_sends_nothing(tmp_path: Path) -> None:
    notifiers = load_notifiers(tmp_path / "missing.env")
    assert notifiers.names == []
    notifiers.send("new_data", "3 rows", {})


def test_an_unknown_event_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown notification event 'promote'"):
        load_notifiers(None).send("promote", "x", {})
    assert "rolled_back" in EVENTS


@pytest.mark.parametrize(
    ("env", "key", "line"),
    [
        ({"SPECLOOP_WEBHOOK_URL": "hooks.example/abc secret"}, "SPECLOOP_WEBHOOK_URL", 2),
        ({"SPECLOOP_WEBHOOK_URL": "ftp://hooks.example/x"}, "SPECLOOP_WEBHOOK_URL", 2),
        ({"SPECLOOP_WEBHOOK_URL": "http://127.0.0.1:port/x"}, "SPECLOOP_WEBHOOK_URL", 2),
        (
            {
                "SPECLOOP_TELEGRAM_TOKEN": TOKEN,
                "SPECLOOP_TELEGRAM_CHAT_ID": "1",
                "SPECLOOP_TELEGRAM_API": "nowhere",
            },
            "SPECLOOP_TELEGRAM_API",
            4,
        ),
        ({"SPECLOOP_TELEGRAM_TOKEN": TOKEN}, "SPECLOOP_TELEGRAM_CHAT_ID", None),
        (
            {
                "SPECLOOP_SMTP_HOST": "127.0.0.1",
                "SPECLOOP_SMTP_PORT": "twenty-five",
                "SPECLOOP_SMTP_FROM": "a@b.c",
                "SPECLOOP_SMTP_TO": "d@e.f",
            },
            "SPECLOOP_SMTP_PORT",
            3,
        ),
        ({"SPECLOOP_SMTP_HOST": "127.0.0.1", "SPECLOOP_SMTP_FROM": "a@b.c"}, "SPECLOOP_SMTP_TO", None),
        ({"SPECLOOP_SMTP_HOST": "h", "SPECLOOP_SMTP_STARTTLS": "maybe"}, "SPECLOOP_SMTP_STARTTLS", 3),
        ({"SPECLOOP_NOTIFY_EVENTS": "promoted,promote"}, "SPECLOOP_NOTIFY_EVENTS", 2),
    ],
)
def test_a_bad_setting_names_its_key_and_line_never_its_value(
    tmp_path: Path, env: dict[str, str], key: str, line: int | None
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# alerts\n" + "".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
    with pytest.raises(SpecloopError) as info:
        load_notifiers(env_file)
    message = info.value.message
    assert key in message and info.value.rule == "notifier-config"
    assert message.startswith(f"{env_file}:{line}: " if line else f"{env_file}: ")
    assert "\n" not in message
    for value in env.values():
        if len(value) > 3 and value not in ("127.0.0.1",):
            assert value not in message
