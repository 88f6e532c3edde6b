"""A tiny HTTP server on 127.0.0.1 that records every POST as it came (headers, and the body
as sent: de-chunked, never decompressed) and answers with what its owner says: the one
receiver under the OTLP and Sentry capture servers of the tests (``otlp_capture``,
``sentry_capture``), which differ only in what they answer and how they read a body."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True)
class RawPost:
    target: str  # the request target: path and query
    headers: dict[str, str]  # names lowercased
    body: bytes  # as sent: still compressed if the client compressed it


# What to answer a POST: its Content-Type and body (always 200).
Answer = Callable[[RawPost], tuple[str, bytes]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    received: list[RawPost]
    answer: Answer

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up: expected
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._chunked()
        else:
            body = self.rfile.read(min(int(headers.get("content-length", "0")), MAX_BODY))
        post = RawPost(self.path, headers, body)
        self.server.received.append(post)
        content_type, answer = self.server.answer(post)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()


class Recorder:
    """The running server: where it listens and what it received."""

    def __init__(self, server: _Server) -> None:
        self._server = server

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def received(self) -> list[RawPost]:
        return list(self._server.received)

    def wait_until(self, enough: Callable[[list[RawPost]], bool], timeout: float = 10.0) -> list[RawPost]:
        """What was received once ``enough`` of it came (or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        while not enough(self.received) and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received


@contextmanager
def recording(answer: Answer) -> Iterator[Recorder]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.received = []
    server.answer = answer
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Recorder(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
