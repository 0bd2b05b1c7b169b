"""`specloop dashboard WS`: serve the live dashboard of a watched workspace."""

from __future__ import annotations

import socket
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from specloop.errors import SpecloopError

console = Console(stderr=True)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_port(host: str, port: int) -> None:
    """A port already taken is bad input, said in one sentence before the server starts."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise SpecloopError(
            f"--host {host}: not an address this machine can bind", rule="dashboard"
        ) from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise SpecloopError(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); pick another port",
                rule="dashboard",
            ) from None


def dashboard_command(
    ws: Path = typer.Argument(..., metavar="WS", help="The watched DEFT workspace."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback unless told otherwise)."),
) -> None:
    """Serve the dashboard: champion, versions and metrics, KPI trend, watcher state, pause/resume."""
    if not ws.is_dir():
        raise SpecloopError(f"{ws}: no such workspace directory", rule="workspace")
    import uvicorn

    from specloop.dashboard import create_app

    app = create_app(ws)
    _check_port(host, port)
    if host not in LOOPBACK:
        console.print(
            escape(f"warning: {host} is not loopback; the dashboard has no login and can pause the watcher"),
            highlight=False,
        )
    console.print(escape(f"dashboard of {ws} on http://{host}:{port}/ (Ctrl-C stops it)"), highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")
