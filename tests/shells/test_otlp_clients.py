"""Real OpenTelemetry clients nobody here wrote against a RUNNING instance's OTLP/HTTP receiver
(tray_app/ingest/otlp_routes.py), configured by environment variables only, in subprocesses:

* Node's SDK from npm (``@opentelemetry/sdk-logs`` and ``sdk-metrics``, with the OTLP HTTP JSON
  exporters and the protobuf ones, as tests/support/node_otel/package-lock.json pins them), running
  tests/support/node_otel/emit.mjs: what it sends is held for review, with the values Node sent
  in the declared fields and everything else dropped and counted; a wrong token is a 401 the
  exporter reports.
* Python's stock exporter (``opentelemetry-exporter-otlp-proto-http``) through a relay on
  127.0.0.1 that lets the tray store the first request, then tells the exporter 429 or 503 with
  ``Retry-After: 1``: the exporter sends the same bytes again, and the tray stores them once.

One instance serves the module (TELEMETRY_TRAY_OTLP_PORT=0); each test registers its own app.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.builders import ROOT, manifest_obj
from tests.support.processes import Proc

NODE_DIR = ROOT / "tests" / "support" / "node_otel"
NODE = shutil.which("node")
HOW = (
    "the Node OpenTelemetry SDK tests need node and npm (Debian: apt-get install nodejs npm; .ci/run does it) "
    "and the packages of tests/support/node_otel/package-lock.json (make install runs npm ci there)"
)
if NODE is None:
    _NODE_MISSING: str | None = f"node is not installed: {HOW}"
elif not (NODE_DIR / "node_modules" / "@opentelemetry" / "sdk-logs").is_dir():
    _NODE_MISSING = f"tests/support/node_otel/node_modules is missing: {HOW}"
else:
    _NODE_MISSING = None
needs_node = pytest.mark.skipif(_NODE_MISSING is not None, reason=_NODE_MISSING or "")

_apps = count(1)
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")


def _field(name: str, type_: str, source: str | None = None, **more: Any) -> dict[str, Any]:
    field = {"name": name, "type": type_, "description": f"The {name}", **more}
    if source is not None:
        field["source"] = source
    return field


# What emit.mjs sends (service photoedit): three log records, two counters (three points).
NODE_FIELDS = [
    _field("event", "enum", values=["export", "crop", "save"]),  # attr:event
    _field("feature", "string", "event_name"),
    _field("level", "enum", "severity", values=["INFO", "WARN", "ERROR"]),
    _field("at", "timestamp", "time"),
    _field("message", "string", "body"),
    _field("duration_ms", "integer"),
    _field("retries", "integer"),
    _field("zoom", "number"),
    _field("app_version", "version", "resource:service.version"),
    _field("counter", "enum", "metric", values=["photoedit.exports", "photoedit.saved_mb"]),
    _field("n", "number", "value"),
    _field("format", "enum", values=["png", "jpeg"]),
]

# What the Python EMIT below sends (service tiny).
PYTHON_FIELDS = [
    _field("event", "enum", values=["export", "crop"]),
    _field("feature", "string", "event_name"),
    _field("level", "enum", "severity", values=["INFO", "WARN"]),
    _field("app_version", "version", "resource:service.version"),
    _field("counter", "enum", "metric", values=["tiny.exports"]),
    _field("n", "integer", "value"),
]


class Tray:
    """The running instance, seen through its CLI (which opens the same database)."""

    def __init__(self, proc: Proc, home: Path) -> None:
        self.proc = proc
        self.home = home
        status = self._json("status", "--json")
        assert status["running"] is True and status["otlp_problem"] is None, status
        self.otlp_url: str = status["otlp_url"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", self.otlp_url)

    def _json(self, *args: str) -> Any:
        result = self.proc.cli(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return json.loads(result.stdout)

    def register(self, service: str, fields: list[dict[str, Any]], *, allow: bool = True) -> tuple[str, str]:
        """A new app with ``[otlp] service_names = [service]``, allowed unless told: its id and token."""
        app_id = f"org.example.client{next(_apps)}"
        path = self.home.parent / f"{app_id}.json"
        manifest = manifest_obj(app_id=app_id, fields=fields, otlp={"service_names": [service]})
        path.write_text(json.dumps(manifest), encoding="utf-8")
        registered = self._json("register", str(path), "--json")
        assert registered["app_id"] == app_id and registered["status"] == "awaiting_consent", registered
        if allow:
            result = self.proc.cli("consent", app_id, "allow")
            assert result.returncode == 0, result.stderr
        return app_id, str(registered["token"])

    def batches(self, app_id: str) -> list[dict[str, Any]]:
        return [batch for batch in self._json("pending", "--json") if batch["app_id"] == app_id]

    def stored(self, app_id: str) -> int:
        return sum(batch["reports"] for batch in self.batches(app_id))

    def close(self, app_id: str) -> str:
        """Close the app's window now; its one batch, which must wait for the person."""
        self._json("close-batches", "--json")
        [batch] = self.batches(app_id)
        assert batch["status"] == "pending", batch  # allowed, policy "ask": held for the person's decision
        return str(batch["batch_id"])

    def payload(self, batch_id: str) -> tuple[list[dict[str, Any]], str]:
        """The reports the batch would send (``show --json``), and that output as text."""
        result = self.proc.cli("show", batch_id, "--json")
        assert result.returncode == 0, result.stderr
        return list(json.loads(result.stdout)["payload"]["reports"]), result.stdout

    def dropped(self, batch_id: str) -> dict[str, int]:
        """The review's "dropped at ingest" names and counts (``show``)."""
        text = self.proc.cli("show", batch_id).stdout
        line = next(line for line in text.splitlines() if line.startswith("Dropped at ingest"))
        found = re.findall(r"(\S+) \((\d+)\)", line.split(":", 1)[1])
        return {name: int(n) for name, n in found}


@pytest.fixture(scope="module")
def tray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tray]:
    home = tmp_path_factory.mktemp("otlp-clients") / "home"
    with Proc(home, extra_env={"TELEMETRY_TRAY_OTLP_PORT": "0"}) as proc:
        yield Tray(proc, home)
        assert proc.stop() == 0


def _client_env(endpoint: str, token: str, service: str, version: str, **extra: str) -> dict[str, str]:
    """This session's environment without OTEL_ and NODE_ variables, and the exporter's settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "NODE_"))}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Bearer%20{token}",
        OTEL_SERVICE_NAME=service,
        OTEL_RESOURCE_ATTRIBUTES=f"service.version={version}",
        OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="delta",
        **extra,
    )
    return env


# -- Node's SDK --------------------------------------------------------------------------------


def _run_node(tray: Tray, token: str, protocol: str) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    env = _client_env(
        tray.otlp_url, token, "photoedit", "3.1.4",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_COMPRESSION="gzip" if protocol == "http/protobuf" else "none",
        NODE_NO_WARNINGS="1",  # Node's own warnings; the SDK's diag output still reaches stderr
    )  # fmt: skip
    result = subprocess.run(
        [NODE, "emit.mjs"], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result


def _near_now(text: object) -> bool:
    if not isinstance(text, str) or not ISO.fullmatch(text):
        return False
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return abs(datetime.now(UTC) - moment) < timedelta(minutes=10)


@needs_node
@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_node_sdk_logs_and_delta_counters_are_held_with_the_values_node_sent(tray: Tray, protocol: str) -> None:
    app_id, token = tray.register("photoedit", NODE_FIELDS)
    result = _run_node(tray, token, protocol)
    # Every export was answered 200: the SDK reports the partial_success (what was dropped), no error.
    assert "OTLPExporterError" not in result.stderr and "export failed" not in result.stderr, result.stderr
    assert result.stderr.count("Received Partial Success response") == 2, result.stderr  # logs, metrics
    assert "resource:service.instance.id" in result.stderr and "attr:gpu" in result.stderr
    assert tray.stored(app_id) == 6

    batch_id = tray.close(app_id)
    reports, shown = tray.payload(batch_id)
    logs, points = reports[:3], reports[3:]
    assert logs[0] == {
        "event": "export",
        "feature": "photoedit.feature_used",
        "level": "INFO",
        "at": "2026-11-30T00:00:00.123456Z",  # emit.mjs's HrTime, to the microsecond
        "message": "feature_used",
        "duration_ms": 420,
        "zoom": 5,
        "app_version": "3.1.4",
    }
    # No timestamp given: the SDK set it to now.
    assert _near_now(logs[1].pop("at")) and _near_now(logs[2].pop("at"))
    assert logs[1:] == [
        {"event": "crop", "level": "WARN", "message": '{"n":2,"step":"crop"}', "app_version": "3.1.4"},
        {"event": "save", "level": "ERROR", "message": "disk full", "retries": -3, "app_version": "3.1.4"},
    ]
    assert all(_near_now(point.pop("at")) for point in points)
    assert sorted(points, key=lambda p: (p["counter"], p["n"])) == [
        {"counter": "photoedit.exports", "format": "jpeg", "n": 2, "app_version": "3.1.4"},
        {"counter": "photoedit.exports", "format": "png", "n": 3, "app_version": "3.1.4"},
        {"counter": "photoedit.saved_mb", "n": 7, "app_version": "3.1.4"},
    ]
    assert all(type(point["n"]) is int for point in points)  # asInt as sent; the whole asDouble 7.0 as 7

    # What nobody declared is named and counted in the review, never shown as a value.
    dropped = tray.dropped(batch_id)
    assert (dropped.get("attr:gpu"), dropped.get("attr:ratio"), dropped.get("attr:tags")) == (1, 1, 1)  # record 1's
    for name in (
        "resource:service.instance.id",
        "resource:host.name",
        "resource:process.pid",
        "resource:process.command_args",
        "resource:telemetry.sdk.language",
        "resource:telemetry.sdk.version",
    ):
        assert dropped.get(name) == 6, (name, dropped)
    assert all(n == 6 for name, n in dropped.items() if name.startswith("resource:")), dropped
    declared = {"attr:event", "attr:duration_ms", "attr:zoom", "attr:retries", "attr:format"}
    assert not declared & set(dropped) and "resource:service.version" not in dropped
    assert "resource:service.name" not in dropped  # checked against [otlp] service_names: not a drop
    assert not {"body", "severity", "event_name"} & set(dropped)
    hostname = socket.gethostname()
    assert len(hostname) < 4 or hostname not in shown  # the host's name is dropped, not shown


@needs_node
@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_node_sdk_with_a_wrong_token_gets_401_and_reports_the_failure(tray: Tray, protocol: str) -> None:
    app_id, _ = tray.register("photoedit", NODE_FIELDS)
    result = _run_node(tray, "not-the-token", protocol)
    # The logs exporter's error, with the status and the tray's JSON error body; the metrics reader's.
    assert '"code":"401"' in result.stderr and "OTLPExporterError: Unauthorized" in result.stderr, result.stderr
    assert '\\"error\\": \\"unauthorized\\"' in result.stderr
    assert "metrics export failed (error OTLPExporterError: Unauthorized)" in result.stderr
    assert tray.stored(app_id) == 0 and tray.batches(app_id) == []


# -- Python's exporter, retrying through a relay -------------------------------------------------

EMIT = r"""
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

resource = Resource.create()
logs = LoggerProvider(resource=resource)
logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter()))  # one request per record
logger = logs.get_logger("tiny.ui", "1.0")
logger.emit(severity_number=SeverityNumber.INFO, event_name="tiny.export", attributes={"event": "export"})
logger.emit(severity_number=SeverityNumber.WARN, event_name="tiny.crop", attributes={"event": "crop"})
logs.shutdown()
metrics = MeterProvider(resource=resource, metric_readers=[
    PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=600_000)])
metrics.get_meter("tiny.metrics").create_counter("tiny.exports").add(3)
metrics.shutdown()
"""


@dataclass(frozen=True)
class Seen:
    path: str
    body: bytes  # as sent (gzipped)
    tray_status: int  # what the tray answered
    answered: int  # what the relay answered the exporter


class _Relay(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, target: str, refuse_with: int) -> None:
        super().__init__(("127.0.0.1", 0), _RelayHandler)
        parts = urlsplit(target)
        assert parts.hostname is not None and parts.port is not None
        self.target = (parts.hostname, parts.port)
        self.refuse_with = refuse_with
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _RelayHandler(BaseHTTPRequestHandler):
    """Forwards each POST to the tray; the first one to each path is then answered
    ``refuse_with`` and ``Retry-After: 1`` whatever the tray said, the others as the tray said."""

    server: _Relay
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sent = {name: value for name, value in self.headers.items() if name.lower() not in ("host", "connection")}
        tray = http.client.HTTPConnection(*self.server.target, timeout=10)
        try:
            tray.request("POST", self.path, body, sent)
            response = tray.getresponse()
            status, content_type, answer = response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            tray.close()
        with self.server.lock:
            first = not any(seen.path == self.path for seen in self.server.seen)
            answered = self.server.refuse_with if first else status
            self.server.seen.append(Seen(self.path, body, status, answered))
        if first:
            self.send_response(answered)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def relay(tray: Tray, request: pytest.FixtureRequest) -> Iterator[_Relay]:
    server = _Relay(tray.otlp_url, request.param)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("relay", [429, 503], indirect=True, ids=["429", "503"])
def test_python_exporter_resends_after_retry_after_and_the_tray_stores_once(tray: Tray, relay: _Relay) -> None:
    app_id, token = tray.register("tiny", PYTHON_FIELDS)
    host, port = relay.server_address[:2]
    env = _client_env(f"http://{host!s}:{port}", token, "tiny", "1.2.3", OTEL_EXPORTER_OTLP_COMPRESSION="gzip")
    result = subprocess.run(
        [sys.executable, "-c", EMIT], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    # The exporter ended without error: it waited as told (1 s, not its own backoff) and sent again.
    assert result.returncode == 0, result.stderr
    assert "Failed to export" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("retrying in 1.00s") == 2, result.stderr  # once for logs, once for metrics

    logs = [seen for seen in relay.seen if seen.path == "/v1/logs"]
    metrics = [seen for seen in relay.seen if seen.path == "/v1/metrics"]
    assert [(s.tray_status, s.answered) for s in logs] == [(200, relay.refuse_with), (200, 200), (200, 200)]
    assert [(s.tray_status, s.answered) for s in metrics] == [(200, relay.refuse_with), (200, 200)]
    assert logs[0].body == logs[1].body != logs[2].body  # the same bytes again, then the second record
    assert metrics[0].body == metrics[1].body
    assert [s.tray_status for s in relay.seen] == [200] * 5  # the tray stored the first try of each

    # Each record is held exactly once, with the values the SDK sent.
    assert tray.stored(app_id) == 3
    reports, _ = tray.payload(tray.close(app_id))
    assert reports == [
        {"app_version": "1.2.3", "event": "export", "feature": "tiny.export", "level": "INFO"},
        {"app_version": "1.2.3", "event": "crop", "feature": "tiny.crop", "level": "WARN"},
        {"app_version": "1.2.3", "counter": "tiny.exports", "n": 3},
    ]
