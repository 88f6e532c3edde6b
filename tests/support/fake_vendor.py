"""A real vendor server on 127.0.0.1 for tests, with scripted answers and faults.

Each request takes the next step of the script (the last one repeats):
``200`` / ``(503, {"Retry-After": "120"})`` answer with that status and headers;
``"reset"`` closes the connection without answering; ``("hang", seconds)`` waits
before answering 200; ``("slow", seconds, status)`` waits, then answers ``status``;
``("body", status, data)`` answers ``status`` with ``data`` as the body. Every request
that arrived whole is recorded. The tests and ``bench/`` (a slow vendor: ``[("hang", 2)]``)
use it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Step = Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a sender cut off (the tray quit): expected
            super().handle_error(request, client_address)


class Vendor:
    def __init__(self, script: list[Step] | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.script: list[Step] = list(script or [200])
        self.received: list[Received] = []
        self.lock = threading.Lock()
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with vendor.lock:
                    step = vendor.script.pop(0) if len(vendor.script) > 1 else vendor.script[0]
                    vendor.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if step == "reset":
                    # SO_LINGER 0: the close sends RST, like a crashed or dropped server.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                headers: dict[str, str] = {}
                answer: bytes | None = None
                if isinstance(step, tuple) and step[0] == "hang":
                    time.sleep(step[1])
                    status = 200
                elif isinstance(step, tuple) and step[0] == "slow":
                    time.sleep(step[1])
                    status = step[2]
                elif isinstance(step, tuple) and step[0] == "body":
                    status, answer = step[1], step[2]
                elif isinstance(step, tuple):
                    status, headers = step
                else:
                    status = int(step)
                if answer is None:
                    answer = b'{"ok":true}' if status < 300 else b'{"error":"scripted"}'
                self.send_response(status)
                for name, value in {"X-Request-Id": f"req-{len(vendor.received)}", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                # The client may stop reading a huge answer: that is its right.
                with contextlib.suppress(OSError):
                    self.wfile.write(answer)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        host = "localhost" if tls is not None else "127.0.0.1"
        self.url = f"{scheme}://{host}:{self.server.server_address[1]}/v1/batches"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [r.body for r in self.received]


@contextmanager
def vendor(script: list[Step] | None = None, tls: ssl.SSLContext | None = None) -> Iterator[Vendor]:
    v = Vendor(script, tls)
    v.thread.start()
    try:
        yield v
    finally:
        v.server.shutdown()
        v.server.server_close()
