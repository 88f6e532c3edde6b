"""A tiny OTLP/HTTP receiver on 127.0.0.1 that records what a real OpenTelemetry exporter sends.

It answers every POST 200 with an empty ``Export…ServiceResponse`` in the request's encoding
(``b""`` for protobuf, ``{}`` for JSON: full success, so the exporter neither retries nor
logs), and records the path, the headers and the body (gunzipped when the exporter
compressed it). Used as ``with capture() as server: ... server.url ... server.received``,
or through :func:`run_exporter`, which runs a program using a stock SDK against it.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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


@dataclass(frozen=True)
class Exported:
    """What one run of an exporting program sent (its one logs and one metrics request)
    and what it wrote to stderr."""

    logs: Captured
    metrics: Captured
    stderr: str


def run_exporter(
    command: Sequence[str],
    *,
    compressed: bool,
    temporality: str = "delta",
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    clear: tuple[str, ...] = ("OTEL_",),
) -> Exported:
    """Run ``command``, a program that logs and records metrics through a stock
    OpenTelemetry SDK configured by environment variables only, against a fresh
    :func:`capture` server; it must exit 0 having sent one logs and one metrics request.

    This session's variables starting with one of ``clear`` are left out; the exporter
    is pointed at the server with the bearer token ``tok123`` (percent-encoded, as the
    spec's OTEL_EXPORTER_OTLP_HEADERS wants), service ``photoedit`` at version 3.1.4,
    the metrics ``temporality``, gzip when ``compressed``; ``env`` adds the rest."""
    with capture() as server:
        variables = {key: value for key, value in os.environ.items() if not key.startswith(clear)}
        variables.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=server.url,
            OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20tok123",
            OTEL_SERVICE_NAME="photoedit",
            OTEL_RESOURCE_ATTRIBUTES="service.version=3.1.4",
            OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=temporality,
            OTEL_EXPORTER_OTLP_COMPRESSION="gzip" if compressed else "none",
        )
        variables.update(env or {})
        result = subprocess.run(
            list(command), cwd=cwd, env=variables, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
        logs = server.wait_for("/v1/logs")
        metrics = server.wait_for("/v1/metrics")
    assert len(logs) == 1 and len(metrics) == 1, [item.path for item in server.received]
    return Exported(logs[0], metrics[0], result.stderr)
