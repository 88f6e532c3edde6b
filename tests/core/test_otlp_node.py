"""OTLP/HTTP in (tray_app/core/rules/otlp_wire.py) from a client nobody here wrote: Node's stock
OpenTelemetry SDK from npm (``@opentelemetry/sdk-logs`` and ``sdk-metrics`` with the OTLP HTTP
JSON exporters and the protobuf ones, pinned by tests/support/node_otel/package-lock.json),
configured by environment variables only, in a subprocess (tests/support/node_otel/emit.mjs)."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

from tests.support.builders import ROOT
from tests.support.otlp_capture import Captured, run_exporter
from tray_app.core.rules import otlp_wire as wire

NODE_DIR = ROOT / "tests" / "support" / "node_otel"
NODE = shutil.which("node")
HOW = (
    "the Node OpenTelemetry SDK tests need node and npm (Debian: apt-get install nodejs npm; .ci/run does it) "
    "and the packages of tests/support/node_otel/package-lock.json (make install runs npm ci there)"
)

pytestmark = [
    pytest.mark.skipif(NODE is None, reason=f"node is not installed: {HOW}"),
    pytest.mark.skipif(
        not (NODE_DIR / "node_modules" / "@opentelemetry" / "sdk-logs").is_dir(),
        reason=f"tests/support/node_otel/node_modules is missing: {HOW}",
    ),
]

JSON = "application/json"
PROTOBUF = "application/x-protobuf"

# What the JS SDK adds to the resource (defaultResource and the NodeSDK's default detectors),
# beside what the environment set. host.id is left out: it is there only where /etc/machine-id is.
NODE_RESOURCE_KEYS = {
    "service.name",
    "service.version",
    "service.instance.id",
    "telemetry.sdk.language",
    "telemetry.sdk.name",
    "telemetry.sdk.version",
    "process.pid",
    "process.owner",
    "process.command",
    "process.executable.path",
    "process.runtime.name",
    "host.name",
    "host.arch",
    "os.type",
}

SOURCES = {
    "event": None,  # attr:event
    "feature": "event_name",
    "level": "severity",
    "at": "time",
    "message": "body",
    "duration_ms": "attr:duration_ms",
    "zoom": "attr:zoom",
    "app_version": "resource:service.version",
}


def _run_node(protocol: str, *, gzip: bool) -> dict[str, Captured]:
    assert NODE is not None
    sent = run_exporter(
        [NODE, "emit.mjs"],
        cwd=NODE_DIR,
        compressed=gzip,
        clear=("OTEL_", "NODE_"),
        env={
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            # Node's own warnings; the SDK's diag output still reaches stderr
            "NODE_NO_WARNINGS": "1",
        },
    )
    assert sent.stderr == "", sent.stderr  # the SDK's diag warnings: an export failed or was refused
    return {"logs": sent.logs, "metrics": sent.metrics}


@pytest.fixture(scope="module")
def protobuf_sent() -> dict[str, Captured]:
    return _run_node("http/protobuf", gzip=True)


@pytest.fixture(scope="module")
def json_sent() -> dict[str, Captured]:
    return _run_node("http/json", gzip=False)


@pytest.fixture(params=["http/protobuf", "http/json"])
def node_sent(request: pytest.FixtureRequest) -> tuple[str, dict[str, Captured]]:
    protocol: str = request.param
    sent: dict[str, Captured] = request.getfixturevalue("protobuf_sent" if protocol == "http/protobuf" else "json_sent")
    return protocol, sent


def _content_type(protocol: str) -> str:
    return PROTOBUF if protocol == "http/protobuf" else JSON


def test_the_node_sdk_sends_what_we_decode_exactly(node_sent: tuple[str, dict[str, Captured]]) -> None:
    protocol, sent = node_sent
    for captured in sent.values():
        assert captured.headers["authorization"] == "Bearer tok123"  # percent-decoded by the SDK
        assert captured.headers["content-type"] == _content_type(protocol)
        assert wire.media_type(captured.headers["content-type"]) == protocol.removeprefix("http/")
        assert captured.headers["user-agent"].startswith("OTel-OTLP-Exporter-JavaScript/")
        assert captured.gzipped is (protocol == "http/protobuf")
    logs = sent["logs"]
    records = wire.decode_logs(logs.body, logs.headers["content-type"]).records
    assert len(records) == 3
    first, second, third = records

    # the SDK's own resource attributes, beside what the environment set
    assert set(first.resource) >= NODE_RESOURCE_KEYS
    assert first.resource["service.name"] == first.service_name == "photoedit"
    assert first.resource["service.version"] == "3.1.4"
    assert first.resource["telemetry.sdk.language"] == "nodejs"
    assert first.resource["telemetry.sdk.name"] == "opentelemetry"
    assert type(first.resource["process.pid"]) is int  # an intValue sent as a JSON number
    assert first.resource is second.resource is third.resource  # one mapping per resource

    assert (first.scope_name, first.scope_version) == ("photoedit.ui", "1.2.3")
    assert first.time_unix_nano == 1795996800123456789  # an HrTime: the nanoseconds survive
    assert first.observed_time_unix_nano > 0
    assert (first.severity_number, first.severity_text) == (9, "INFO")
    assert first.body == "feature_used"
    assert first.event_name == "photoedit.feature_used"
    assert first.attributes == {"event": "export", "duration_ms": 420, "gpu": True, "ratio": 0.5, "zoom": 5}
    assert {key: type(value) for key, value in first.attributes.items()} == {
        "event": str,
        "duration_ms": int,
        "gpu": bool,
        "ratio": float,
        "zoom": int,  # 5.0 in JavaScript is the number 5: the SDK sends an intValue
    }
    # arrays are refused per attribute and counted: the record's tags, the resource's command line
    assert set(first.dropped) == {"attr:tags", "resource:process.command_args"}

    # no timestamp given: unlike Python, the JS SDK sets both times (to the millisecond)
    assert second.time_unix_nano == second.observed_time_unix_nano > 0
    assert second.time_unix_nano % 1_000_000 == 0
    assert (second.severity_number, second.severity_text, second.event_name) == (13, "", "")
    assert second.body == '{"n":2,"step":"crop"}'  # a kvlist body: its canonical JSON text
    assert second.attributes == {"event": "crop"}
    assert (third.severity_number, third.body) == (17, "disk full")
    assert third.attributes == {"event": "save", "retries": -3} and type(third.attributes["retries"]) is int

    report, dropped = wire.to_report(first, SOURCES)
    assert report == {
        "event": "export",
        "feature": "photoedit.feature_used",
        "level": "INFO",
        "at": "2026-11-30T00:00:00.123456Z",
        "message": "feature_used",
        "duration_ms": 420,
        "zoom": 5,
        "app_version": "3.1.4",
    }
    undeclared = {f"resource:{key}" for key in first.resource} - {"resource:service.version"}
    assert set(dropped) == {"attr:gpu", "attr:ratio", "attr:tags", "resource:process.command_args"} | undeclared
    assert {"resource:host.name", "resource:process.owner", "resource:service.instance.id"} <= set(dropped)

    # declared, an SDK attribute is kept, with its type
    report, dropped = wire.to_report(
        third, {"event": None, "host": "resource:host.name", "pid": "resource:process.pid"}
    )
    assert report == {"event": "save", "host": first.resource["host.name"], "pid": first.resource["process.pid"]}
    assert "resource:host.name" not in dropped and "resource:process.pid" not in dropped
    assert {"attr:retries", "body", "severity", "resource:process.owner"} <= set(dropped)


def test_the_node_sdk_metrics_become_points(node_sent: tuple[str, dict[str, Captured]]) -> None:
    _, sent = node_sent
    metrics = sent["metrics"]
    points = wire.decode_metrics(metrics.body, metrics.headers["content-type"]).points
    by_name: dict[str, list[wire.OtlpDataPoint]] = {}
    for point in points:
        by_name.setdefault(point.metric, []).append(point)
    assert set(by_name) == {"photoedit.exports", "photoedit.saved_mb"}

    exports = sorted(by_name["photoedit.exports"], key=lambda p: str(p.attributes["format"]))
    assert [(p.attributes, p.value) for p in exports] == [({"format": "jpeg"}, 2), ({"format": "png"}, 3)]
    for point in exports:
        assert (point.kind, point.temporality, point.monotonic, point.unit) == ("sum", 1, True, "{export}")
        assert type(point.value) is int  # ValueType.INT: asInt
        assert wire.point_refusal(point) is None
        assert set(point.resource) >= NODE_RESOURCE_KEYS
        assert (point.scope_name, point.scope_version) == ("photoedit.metrics", "1.2.3")
        assert point.dropped == ("resource:process.command_args",)
    # a counter of the default value type sends asDouble, even for a whole number
    [saved] = by_name["photoedit.saved_mb"]
    assert (saved.kind, saved.temporality, saved.value, saved.attributes) == ("sum", 1, 7.0, {})
    assert type(saved.value) is float
    assert wire.point_refusal(saved) is None

    report, dropped = wire.to_report(exports[1], {"metric": "metric", "value": "value", "format": None, "at": "time"})
    assert report["metric"] == "photoedit.exports" and report["value"] == 3 and report["format"] == "png"
    assert isinstance(report["at"], str) and report["at"].endswith("Z")
    assert {"resource:host.name", "resource:service.name", "resource:telemetry.sdk.version"} <= set(dropped)


def test_the_json_exporter_sends_the_known_quirks(json_sent: dict[str, Captured]) -> None:
    """What the JS JSON encoder really writes, so a change in a new SDK version shows here first:
    64-bit integers as JSON numbers (the spec says decimal strings; a receiver must take both),
    timestamps as strings, enums as integers, the body chunked (no Content-Length)."""
    for captured in json_sent.values():
        assert captured.headers.get("transfer-encoding") == "chunked" and "content-length" not in captured.headers
    logs: dict[str, Any] = json.loads(json_sent["logs"].body)
    [resource_logs] = logs["resourceLogs"]
    resource = {item["key"]: item["value"] for item in resource_logs["resource"]["attributes"]}
    assert type(resource["process.pid"]["intValue"]) is int
    [record, *_] = resource_logs["scopeLogs"][0]["logRecords"]
    attributes = {item["key"]: item["value"] for item in record["attributes"]}
    assert attributes["duration_ms"] == {"intValue": 420}  # a number, not "420"
    assert attributes["zoom"] == {"intValue": 5}
    assert attributes["ratio"] == {"doubleValue": 0.5}
    assert record["timeUnixNano"] == "1795996800123456789"
    assert isinstance(record["observedTimeUnixNano"], str)
    assert record["severityNumber"] == 9
    metrics: dict[str, Any] = json.loads(json_sent["metrics"].body)
    found = {metric["name"]: metric for metric in metrics["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]}
    exports = found["photoedit.exports"]["sum"]
    assert (exports["aggregationTemporality"], exports["isMonotonic"]) == (1, True)
    assert sorted(point["asInt"] for point in exports["dataPoints"]) == [2, 3]
    assert all(
        type(point["asInt"]) is int and isinstance(point["timeUnixNano"], str) for point in exports["dataPoints"]
    )
    [saved] = found["photoedit.saved_mb"]["sum"]["dataPoints"]
    assert saved["asDouble"] == 7 and type(saved["asDouble"]) is int  # JSON 7; decoded as 7.0 (test above)
