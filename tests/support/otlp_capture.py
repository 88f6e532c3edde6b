"""A tiny OTLP/HTTP receiver on 127.0.0.1 that records what a real OpenTelemetry exporter sends.

It answers every POST 200 with an empty ``Export…ServiceResponse`` in the request's encoding
(``b""`` for protobuf, ``{}`` for JSON: full success, so the exporter neither retries nor
logs), and records the path, the headers and the body (gunzipped when the exporter
compressed it). Used as ``with capture() as server: ... server.url ... server.received``.
"""

from __future__ import annotations

import gzip
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True)
class Captured:
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes  # decompressed
    gzipped: bool


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    received: list[Captured]

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            raw = self._chunked()
        else:
            raw = self.rfile.read(min(int(headers.get("content-length", "0")), MAX_BODY))
        gzipped = headers.get("content-encoding", "").lower() == "gzip"
        body = gzip.decompress(raw) if gzipped else raw
        self.server.received.append(Captured(self.path, headers, body, gzipped))
        json_answer = headers.get("content-type", "").startswith("application/json")
        answer = b"{}" if json_answer else b""
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if json_answer else "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()


class Capture:
    def __init__(self, server: _Server) -> None:
        self._server = server

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def received(self) -> list[Captured]:
        return list(self._server.received)

    def at(self, path: str) -> list[Captured]:
        return [item for item in self._server.received if item.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 10.0) -> list[Captured]:
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.at(path)


@contextmanager
def capture() -> Iterator[Capture]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Capture(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
