"""The dashboard's web app: one page, its live fragment, a JSON snapshot, and pause/resume.

Everything shown comes from ``specloop.skills.registry.snapshot`` with secrets masked; the only
thing the app writes is the watcher's pause mark, through ``registry.set_paused``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jinja2
from dotenv import dotenv_values
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from markupsafe import Markup

from specloop.dashboard.chart import trend_svg
from specloop.dashboard.view import percent, safe_snapshot, short, when
from specloop.ledger.redaction import collect_secrets
from specloop.skills import registry
from specloop.skills.notify import load_notifiers

REFRESH_MS = 5000
DEFAULT_REASON = "paused from the dashboard"
MAX_REASON = 200

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
    autoescape=True,
    undefined=jinja2.ChainableUndefined,
)
_templates.globals.update(percent=percent, short=short, when=when)


def _same_origin(request: Request) -> None:
    """Refuse a pause or resume posted by another site's page (a browser names it in ``Origin``)."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(status_code=403, detail="cross-origin request refused")


def create_app(ws: Path) -> FastAPI:
    """The dashboard of workspace ``ws``; a bad notifier setting in its ``.env`` fails here."""
    ws = Path(ws)
    env_file = ws / ".env"
    notifiers = load_notifiers(env_file)
    env_values = {k: v for k, v in (dotenv_values(env_file) if env_file.is_file() else {}).items() if v}
    secrets = notifiers.secrets | collect_secrets(env_values, os.environ)
    app = FastAPI(title="specloop dashboard", docs_url=None, redoc_url=None, openapi_url=None)

    def context() -> dict[str, Any]:
        snap = safe_snapshot(registry.snapshot(ws), secrets)
        return {
            "workspace": ws.name,
            "champion": snap.get("champion"),
            "versions": snap.get("versions") or [],
            "watcher": snap.get("watcher") or {},
            "events": (snap.get("events") or [])[-50:],
            "resources": snap.get("resources") or {},
            "chart": Markup(trend_svg(snap.get("versions") or [])),
            "channels": notifiers.names,
            "now": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "refresh_ms": REFRESH_MS,
        }

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return _templates.get_template("dashboard.html").render(context())

    @app.get("/fragment", response_class=HTMLResponse)
    def fragment() -> str:
        return _templates.get_template("live.html").render(context())

    @app.get("/api/snapshot")
    def api_snapshot() -> JSONResponse:
        return JSONResponse(safe_snapshot(registry.snapshot(ws), secrets))

    @app.post("/pause")
    async def pause(request: Request) -> RedirectResponse:
        _same_origin(request)
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
        reason = " ".join((form.get("reason") or [""])[0].split())[:MAX_REASON] or DEFAULT_REASON
        registry.set_paused(ws, True, reason)
        return RedirectResponse("./", status_code=303)

    @app.post("/resume")
    def resume(request: Request) -> RedirectResponse:
        _same_origin(request)
        registry.set_paused(ws, False, "")
        return RedirectResponse("./", status_code=303)

    return app
