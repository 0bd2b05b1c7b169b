"""A tiny HTTP reverse proxy: the public port of a blue-green deployment.

It forwards every request to the upstream named in a file (``host:port``), re-read whenever the
file changes, so switching versions is one atomic rename and no request is refused meanwhile:
requests already forwarded finish on the old version, new ones go to the new one. Standard library
only — it runs inside the service image (``python router.py --port P --upstream-file F``), or as a
local process where there is no Docker.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


class _Upstream:
    """The upstream address, cached by the file's modification time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: int | None = None
        self._value = ""
        self._lock = threading.Lock()

    def get(self) -> str:
        stamp = os.stat(self.path).st_mtime_ns
        with self._lock:
            if stamp != self._stamp:
                with open(self.path, encoding="utf-8") as fh:
                    self._value = fh.read().strip()
                self._stamp = stamp
            return self._value


def make_handler(upstream: _Upstream) -> type[BaseHTTPRequestHandler]:
    local = threading.local()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in two writes: without TCP_NODELAY, Nagle's algorithm holds the
            # body until the client's delayed ACK (about 40 ms a response).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: object) -> None:
            return

        def _connection(self, address: str) -> http.client.HTTPConnection:
            conns = getattr(local, "conns", None)
            if conns is None:
                conns = local.conns = {}
            if address not in conns:
                host, port = address.rsplit(":", 1)
                conns[address] = http.client.HTTPConnection(host, int(port), timeout=60)
            return conns[address]

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"
            }
            address = upstream.get()
            for attempt in (1, 2):  # a kept-alive connection the upstream closed is retried once
                conn = self._connection(address)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                    break
                except (ConnectionError, http.client.HTTPException, OSError):
                    conn.close()
                    local.conns.pop(address, None)
                    if attempt == 2:
                        self.send_error(502, f"upstream {address} does not answer")
                        return
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Upstream", address)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _forward

    return Handler


def serve(port: int, upstream_file: str, host: str = "127.0.0.1") -> None:
    server = ThreadingHTTPServer((host, port), make_handler(_Upstream(upstream_file)))
    server.daemon_threads = True
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-file", required=True, help="a file holding host:port")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    serve(args.port, args.upstream_file, args.host)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
