"""The OTLP/HTTP receiver of the real instance (tray_app/ingest/otlp_routes.py), against the stock
Python OpenTelemetry SDK configured by environment variables only, in a subprocess.

One instance serves the module (TELEMETRY_TRAY_OTLP_PORT=0: any free port, so tests never
fight over 4318); each test registers its own app, so what one stores does not count in another.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse

from tests.support.otlp_capture import capture
from tests.support.processes import Proc

MANIFEST = """
app_id = "{app_id}"
name = "Tiny"
version = 1
vendor = "Example"
endpoint = "https://telemetry.example.org/v1/batches"
privacy_policy = "https://example.org/privacy"
retention_days = 30
purpose = "Count which features are used"
cadence = "daily"
auth = "none"
{otlp}
[[fields]]
name = "event"
type = "enum"
values = ["export", "crop"]
description = "Which feature"

[[fields]]
name = "feature"
type = "string"
source = "event_name"
description = "The event's name"

[[fields]]
name = "level"
type = "enum"
values = ["INFO", "WARN", "ERROR"]
source = "severity"
description = "How serious"

[[fields]]
name = "app_version"
type = "version"
source = "resource:service.version"
description = "The app's version"

[[fields]]
name = "counter"
type = "enum"
values = ["tiny.exports"]
source = "metric"
description = "Which count"

[[fields]]
name = "n"
type = "integer"
source = "value"
description = "How many"
"""

EMIT = r"""
import os, sys
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

if os.environ.get("EMIT_ENCODING") == "json":  # the beta JSON exporter (the stock one speaks protobuf only)
    from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.json.http.metric_exporter import OTLPMetricExporter
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

resource = Resource.create()
what = sys.argv[1]
if what == "logs":
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter()))
    logger = logs.get_logger("tiny.ui", "1.0")
    logger.emit(severity_number=SeverityNumber.INFO, body="feature used", event_name="tiny.export",
                attributes={"event": "export", "user.path": "/home/someone/secret.txt"})
    logger.emit(severity_number=SeverityNumber.WARN, event_name="tiny.crop", attributes={"event": "crop"})
    logs.shutdown()
elif what == "metrics":
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    metrics = MeterProvider(resource=resource, metric_readers=[
        PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=600_000)])
    meter = metrics.get_meter("tiny.metrics")
    meter.create_counter("tiny.exports").add(3)
    meter.create_histogram("tiny.export_ms").record(12.5)
    metrics.shutdown()
elif what == "traces":
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    traces = TracerProvider(resource=resource)
    traces.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    with traces.get_tracer("tiny").start_as_current_span("open"):
        pass
    traces.shutdown()
"""

PROTOBUF = "application/x-protobuf"
_apps = count(1)


class Tray:
    def __init__(self, proc: Proc, home: Path) -> None:
        self.proc = proc
        self.home = home
        status = self.status()
        assert status["running"] is True and status["otlp_problem"] is None, status
        self.otlp_url: str = status["otlp_url"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", self.otlp_url)

    def status(self) -> dict[str, Any]:
        result = self.proc.cli("status", "--json")
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    def register(self, *, otlp: bool = True) -> tuple[str, str]:
        """A new app (its own id), awaiting consent: its id and token."""
        app_id = f"org.example.tiny{next(_apps)}"
        path = self.home.parent / f"{app_id}.toml"
        table = '\n[otlp]\nservice_names = ["tiny"]\n' if otlp else ""
        path.write_text(MANIFEST.format(app_id=app_id, otlp=table), encoding="utf-8")
        result = self.proc.cli("register", str(path))
        assert result.returncode == 0, result.stderr
        return app_id, result.stdout.strip().splitlines()[-1]

    def batches(self, app_id: str) -> list[dict[str, Any]]:
        result = self.proc.cli("pending", "--json")
        assert result.returncode == 0, result.stderr
        return [batch for batch in json.loads(result.stdout) if batch["app_id"] == app_id]

    def stored(self, app_id: str) -> int:
        return sum(batch["reports"] for batch in self.batches(app_id))

    def emit(self, what: str, token: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The stock SDK, configured by the environment alone, sends ``what`` to the tray."""
        variables = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
        variables.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=self.otlp_url,
            OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Bearer%20{token}",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_SERVICE_NAME="tiny",
            OTEL_RESOURCE_ATTRIBUTES="service.version=1.2.3",
            OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="delta",
            OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
        )
        variables.update(env)
        result = subprocess.run(
            [sys.executable, "-c", EMIT, what], env=variables, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
        return result

    def post(
        self, path: str, body: bytes, token: str | None, *, content_type: str = PROTOBUF, **headers: str
    ) -> tuple[int, Message, bytes]:
        sent = {"Content-Type": content_type, **headers}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.otlp_url + path, data=body, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def alive(self) -> bool:
        with urllib.request.urlopen(self.proc.url + "/v1/health", timeout=5) as response:
            return bool(response.status == 200)


@pytest.fixture(scope="module")
def tray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tray]:
    home = tmp_path_factory.mktemp("otlp") / "home"
    with Proc(home, extra_env={"TELEMETRY_TRAY_OTLP_PORT": "0"}) as proc:
        yield Tray(proc, home)
        assert proc.stop() == 0


def _logs_body(service_name: str = "tiny", records: int = 1) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    attribute = resource_logs.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", service_name
    scope = resource_logs.scope_logs.add()
    for _ in range(records):
        record = scope.log_records.add()
        record.event_name, record.severity_number = "tiny.export", 9
        event = record.attributes.add()
        event.key, event.value.string_value = "event", "export"
    return bytes(request.SerializeToString())


def _sdk_logs_body() -> bytes:
    """The exact bytes the stock SDK sends for EMIT's logs (captured, decompressed)."""
    with capture() as server:
        variables = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
        variables.update(OTEL_EXPORTER_OTLP_ENDPOINT=server.url, OTEL_SERVICE_NAME="tiny")
        subprocess.run([sys.executable, "-c", EMIT, "logs"], env=variables, check=True, timeout=120)
        sent = server.wait_for("/v1/logs", count=2)
    assert len(sent) == 2  # SimpleLogRecordProcessor: one request per record
    return sent[0].body


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_stock_sdk_logs_are_held_and_shown_with_only_declared_fields(tray: Tray, encoding: str) -> None:
    app_id, token = tray.register()
    result = tray.emit("logs", token, EMIT_ENCODING=encoding)
    assert "Failed to export" not in result.stderr
    assert tray.stored(app_id) == 2
    # The app awaits consent: once its window closes the batch is held, never sent.
    tray.proc.cli("close-batches")
    [batch] = tray.batches(app_id)
    assert batch["status"] == "held"
    shown = tray.proc.cli("show", batch["batch_id"], "--json")
    payload = json.loads(shown.stdout)["payload"]
    assert payload["reports"] == [
        {"app_version": "1.2.3", "event": "export", "feature": "tiny.export", "level": "INFO"},
        {"app_version": "1.2.3", "event": "crop", "feature": "tiny.crop", "level": "WARN"},
    ]
    assert "secret.txt" not in shown.stdout and "service.instance.id" not in shown.stdout
    # What the SDK added and nobody declared is named, with its count, in the review.
    text = tray.proc.cli("show", batch["batch_id"]).stdout
    dropped = next(line for line in text.splitlines() if line.startswith("Dropped at ingest"))
    for name in (
        "resource:service.instance.id",
        "resource:telemetry.sdk.language",
        "resource:telemetry.sdk.name",
        "resource:telemetry.sdk.version",
        "attr:user.path",
        "body",
    ):
        assert f"{name} (" in dropped, dropped
    assert "resource:service.instance.id (2)" in dropped
    assert "service.name" not in dropped  # declared in [otlp] service_names and checked: not a drop


def test_stock_sdk_delta_counter_points_become_reports_and_histograms_are_refused(tray: Tray) -> None:
    app_id, token = tray.register()
    tray.emit("metrics", token)
    [batch] = tray.batches(app_id)
    payload = json.loads(tray.proc.cli("show", batch["batch_id"], "--json").stdout)["payload"]
    assert payload["reports"] == [{"app_version": "1.2.3", "counter": "tiny.exports", "n": 3}]


def test_a_wrong_token_is_401_and_nothing_is_stored(tray: Tray) -> None:
    app_id, _ = tray.register()
    result = tray.emit("logs", "not-the-token")
    assert "code: 401" in result.stderr
    status, headers, body = tray.post("/v1/logs", _logs_body(), "not-the-token")
    assert status == 401 and json.loads(body)["error"] == "unauthorized"
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert tray.post("/v1/logs", _logs_body(), None)[0] == 401
    assert tray.stored(app_id) == 0


def test_a_service_name_not_declared_is_refused_in_partial_success_and_nothing_is_stored(tray: Tray) -> None:
    app_id, token = tray.register()
    result = tray.emit("logs", token, OTEL_SERVICE_NAME="helper")
    assert "Failed to export" not in result.stderr  # 200: the exporter does not retry bad data
    status, headers, body = tray.post("/v1/logs", _logs_body("helper", records=3), token)
    assert status == 200 and headers["Content-Type"] == PROTOBUF
    answer = ExportLogsServiceResponse.FromString(body)
    assert answer.partial_success.rejected_log_records == 3
    message = answer.partial_success.error_message
    assert "service.name 'helper'" in message and "[otlp] service_names" in message and "'tiny'" in message
    assert tray.stored(app_id) == 0


def test_json_requests_get_json_answers_with_partial_success(tray: Tray) -> None:
    app_id, token = tray.register()
    body = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "other"}}]},
                "scopeLogs": [{"logRecords": [{"eventName": "x"}]}],
            },
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "tiny"}}]},
                "scopeLogs": [{"logRecords": [{"eventName": "x", "attributes": [
                    {"key": "event", "value": {"stringValue": "export"}},
                    {"key": "host.name", "value": {"stringValue": "laptop"}},
                ]}]}],
            },
        ]
    }  # fmt: skip
    status, headers, answer = tray.post("/v1/logs", json.dumps(body).encode(), token, content_type="application/json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    partial = json.loads(answer)["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"
    assert "'other'" in partial["errorMessage"] and "attr:host.name" in partial["errorMessage"]
    assert tray.stored(app_id) == 1
    assert json.loads(tray.post("/v1/logs", b"{}", token, content_type="application/json")[2]) == {}


def test_traces_are_refused_with_a_4xx_the_exporter_does_not_retry_saying_how_to_stop_them(tray: Tray) -> None:
    _, token = tray.register()
    result = tray.emit("traces", token)
    assert "code: 404" in result.stderr and "OTEL_TRACES_EXPORTER=none" in result.stderr
    assert "retrying" not in result.stderr
    status, _, body = tray.post("/v1/traces", b"", token)
    assert status == 404
    answer = json.loads(body)
    assert answer["error"] == "traces_not_accepted" and "OTEL_TRACES_EXPORTER=none" in answer["message"]


def test_an_identical_resend_is_stored_once_and_gzip_is_the_same_request(tray: Tray) -> None:
    app_id, token = tray.register()
    body = _sdk_logs_body()  # what the stock SDK sent, byte for byte
    first = tray.post("/v1/logs", body, token)
    again = tray.post("/v1/logs", body, token)
    zipped = tray.post("/v1/logs", gzip.compress(body), token, **{"Content-Encoding": "gzip"})
    assert first[0] == again[0] == zipped[0] == 200
    assert first[2] == again[2] == zipped[2]
    assert tray.stored(app_id) == 1
    assert tray.post("/v1/logs", _logs_body(), token)[0] == 200  # other bytes are another request
    assert tray.stored(app_id) == 2


@pytest.mark.parametrize(
    "body",
    [b"\xff\xff\xff\xff", _logs_body()[:-3], b"\x0a\x05\x0a\x03\x0a", b"not protobuf at all"],
    ids=["junk", "truncated", "short_field", "text"],
)
def test_junk_and_truncated_protobuf_is_400_and_the_instance_stays_up(tray: Tray, body: bytes) -> None:
    app_id, token = tray.register()
    status, headers, answer = tray.post("/v1/logs", body, token)
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert json.loads(answer)["error"] == "bad_otlp"
    assert tray.post("/v1/metrics", body, token)[0] == 400
    assert tray.post("/v1/logs", gzip.compress(body)[:-4], token, **{"Content-Encoding": "gzip"})[0] == 400
    assert tray.alive() and tray.stored(app_id) == 0


def test_an_app_without_an_otlp_table_is_refused_clearly(tray: Tray) -> None:
    app_id, token = tray.register(otlp=False)
    status, _, body = tray.post("/v1/logs", _logs_body(), token)
    assert status == 403
    answer = json.loads(body)
    assert answer["error"] == "otlp_not_declared" and "[otlp]" in answer["message"]
    assert tray.stored(app_id) == 0


def test_the_otlp_port_has_the_native_defences(tray: Tray) -> None:
    _, token = tray.register()
    port = tray.otlp_url.rsplit(":", 1)[1]
    evil = {"Host": f"rebind.evil.example:{port}"}
    assert tray.post("/v1/logs", _logs_body(), token, **evil)[0] == 403
    assert json.loads(tray.post("/v1/logs", _logs_body(), token, Origin="https://evil.example")[2]) == {
        "error": "forbidden_origin",
        "message": "Requests from web pages are not accepted.",
    }
    assert tray.post("/v1/logs", b"x", token, content_type="text/plain")[0] == 415
    assert tray.post("/v1/logs", b"x", token, **{"Content-Encoding": "br"})[0] == 415
    assert tray.post("/v1/reports", b"{}", token, content_type="application/json")[0] == 404
    bomb = gzip.compress(b"\0" * (2 * 1024 * 1024))
    assert tray.post("/v1/logs", bomb, token, **{"Content-Encoding": "gzip"})[0] == 413
    with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as sock:
        sock.sendall(f"POST http://evil.example/v1/logs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
        sock.sendall(b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 403")


def test_a_taken_otlp_port_leaves_the_instance_running_and_status_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with Proc(tmp_path / "home", extra_env={"TELEMETRY_TRAY_OTLP_PORT": str(port)}) as proc:
            status = json.loads(proc.cli("status", "--json").stdout)
            assert status["running"] is True and status["otlp_url"] is None
            assert f"port {port} is in use" in status["otlp_problem"]
            assert "TELEMETRY_TRAY_OTLP_PORT" in status["otlp_problem"]
            assert f"port {port} is in use" in proc.cli("status").stdout
            assert proc.output().count(f"port {port} is in use") == 1  # one line in the log
            with urllib.request.urlopen(proc.url + "/v1/health", timeout=5) as response:
                assert response.status == 200  # the rest works
            assert proc.stop() == 0
    stopped = json.loads(proc.cli("status", "--json").stdout)
    assert stopped["otlp_url"] is None and stopped["otlp_problem"] is None


def test_the_otlp_port_binds_loopback_only_and_is_fixed_by_its_variable(tray: Tray, tmp_path: Path) -> None:
    port = int(tray.otlp_url.rsplit(":", 1)[1])
    # /proc/net/tcp lists listening sockets as hex "ADDR:PORT"; 0100007F is 127.0.0.1.
    listening = [
        line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:] if line.split()[3] == "0A"
    ]
    assert [addr for addr in listening if int(addr.split(":")[1], 16) == port] == ["0100007F:" + f"{port:04X}"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        fixed = probe.getsockname()[1]
    with Proc(tmp_path / "home", extra_env={"TELEMETRY_TRAY_OTLP_PORT": str(fixed)}) as proc:
        assert json.loads(proc.cli("status", "--json").stdout)["otlp_url"] == f"http://127.0.0.1:{fixed}"
        assert proc.stop() == 0
    # A bad setting is refused before anything starts.
    result = subprocess.run(
        [sys.executable, "-m", "tray_app", "run", "--headless"],
        env={**os.environ, "TELEMETRY_TRAY_HOME": str(tmp_path / "h2"), "TELEMETRY_TRAY_OTLP_PORT": "otlp"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "TELEMETRY_TRAY_OTLP_PORT='otlp' is not a port number" in result.stderr


def test_stalled_clients_on_the_otlp_port_do_not_stop_others(tray: Tray) -> None:
    app_id, token = tray.register()
    port = int(tray.otlp_url.rsplit(":", 1)[1])
    stalled = []
    for _ in range(8):  # more than the server's 4 workers, each half-way through a body
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(
            f"POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {PROTOBUF}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: 1000\r\n\r\npartial".encode()
        )
        stalled.append(sock)
    try:
        assert tray.post("/v1/logs", _logs_body(), token)[0] == 200
        assert tray.stored(app_id) == 1
    finally:
        for sock in stalled:
            sock.close()
