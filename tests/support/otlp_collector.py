"""A vendor's OpenTelemetry Collector on 127.0.0.1, as strict as a real one about what it takes.

It takes ``POST <base>/v1/logs`` and ``<base>/v1/metrics`` with ``Content-Type: application/json``
and parses each body with protobuf's own JSON parser into the OTLP request message, refusing
any field OTLP does not have (``ignore_unknown_fields=False``), as the Collector's OTLP
receiver does; a body that does not parse gets 400, like the Collector's answer. What it
parsed is kept (``received``: path, headers, the raw bytes, the parsed message), so a test
checks both that the vendor got exactly the approved bytes and that they are OTLP.

Answers follow a script (the last step repeats): ``200`` (an empty response, full success),
``("partial", rejected, message)`` (200 with ``partial_success``), ``("partial-proto",
rejected, message)`` (the same, answered in protobuf), or ``(status, {"Retry-After": "1"})``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

Step = Any
_MESSAGES: dict[str, tuple[type[Message], type[Message], str]] = {
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse, "rejectedLogRecords"),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse, "rejectedDataPoints"),
}


@dataclass(frozen=True)
class Export:
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes
    request: Message


class Collector:
    def __init__(self, script: list[Step], base: str) -> None:
        self.script = list(script)
        self.base = base
        self.received: list[Export] = []
        self.refused: list[str] = []  # why bodies were refused (none, when all is well)
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                signal = self.path[len(collector.base) :] if self.path.startswith(collector.base) else ""
                if signal not in _MESSAGES:
                    return self._answer(404, b'{"code":5,"message":"not found"}', "application/json")
                if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
                    return self._answer(415, b'{"code":3,"message":"json only here"}', "application/json")
                request_type, response_type, count_key = _MESSAGES[signal]
                try:
                    request = json_format.Parse(body.decode("utf-8"), request_type(), ignore_unknown_fields=False)
                except (json_format.ParseError, UnicodeDecodeError) as exc:
                    with collector.lock:
                        collector.refused.append(str(exc))
                    return self._answer(400, json.dumps({"code": 3, "message": str(exc)}).encode(), "application/json")
                with collector.lock:
                    step = collector.script.pop(0) if len(collector.script) > 1 else collector.script[0]
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    collector.received.append(Export(signal, headers, body, request))
                if isinstance(step, tuple) and step[0] == "partial":
                    partial = {count_key: str(step[1]), "errorMessage": step[2]}
                    return self._answer(200, json.dumps({"partialSuccess": partial}).encode(), "application/json")
                if isinstance(step, tuple) and step[0] == "partial-proto":
                    response: Any = response_type()
                    if signal == "/v1/logs":
                        response.partial_success.rejected_log_records = step[1]
                    else:
                        response.partial_success.rejected_data_points = step[1]
                    response.partial_success.error_message = step[2]
                    return self._answer(200, response.SerializeToString(), "application/x-protobuf")
                if isinstance(step, tuple):
                    status, extra = step
                    return self._answer(status, b'{"code":14,"message":"busy"}', "application/json", extra)
                return self._answer(int(step), b"{}", "application/json")

            def _answer(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # The collector's base URL, what a format = "otlp" manifest's endpoint names.
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{base}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)


@contextmanager
def collector(script: list[Step] | None = None, base: str = "/otlp") -> Iterator[Collector]:
    c = Collector(script or [200], base)
    c.thread.start()
    try:
        yield c
    finally:
        c.server.shutdown()
        c.server.server_close()
        c.thread.join(5)
