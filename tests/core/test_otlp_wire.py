"""OTLP/HTTP in and out (tray_app/core/rules/otlp_wire.py), against peers nobody here wrote:
the stock Python OpenTelemetry SDK and exporters, opentelemetry-proto's own messages and strict
JSON parser, and the example bodies of the OTLP specification."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.support.builders import ROOT
from tests.support.otlp_capture import run_exporter
from tray_app.core.errors import MalformedError, TooLargeError
from tray_app.core.rules import otlp_wire as wire
from tray_app.core.rules.payload import canonical_bytes

JSON = "application/json"
PROTOBUF = "application/x-protobuf"

# ------------------------------------------------------------------------------------------------
# The stock SDK, configured by environment variables only, in a subprocess

EMIT = r"""
import os
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

if os.environ["EMIT_ENCODING"] == "json":  # the beta JSON exporter (the stock one speaks protobuf only)
    from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.json.http.metric_exporter import OTLPMetricExporter
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

resource = Resource.create()  # service.name and the rest from OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
logs = LoggerProvider(resource=resource)
logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))  # endpoint, headers from env
logger = logs.get_logger("photoedit.ui", "1.2.3")
logger.emit(
    timestamp=1795996800123456789,
    severity_number=SeverityNumber.INFO,
    severity_text="INFO",
    body="feature_used",
    event_name="photoedit.feature_used",
    attributes={"event": "export", "duration_ms": 420, "gpu": True, "ratio": 0.5, "tags": ["a", "b"]},
)
logger.emit(severity_number=SeverityNumber.WARN, body={"step": "crop", "n": 2}, attributes={"event": "crop"})
logger.emit(severity_number=SeverityNumber.ERROR, body="disk full", attributes={"event": "save", "retries": -3})
logs.shutdown()  # flushes

metrics = MeterProvider(
    resource=resource,
    metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=600_000)],
)
meter = metrics.get_meter("photoedit.metrics", "1.2.3")
exports = meter.create_counter("photoedit.exports", unit="{export}")
exports.add(3, {"format": "png"})
exports.add(2, {"format": "jpeg"})
meter.create_gauge("photoedit.zoom").set(1.5, {"view": "main"})
meter.create_up_down_counter("photoedit.open_documents").add(4)
meter.create_histogram("photoedit.export_ms", unit="ms").record(12.5)
metrics.shutdown()  # the last collection, exported
"""

SDK_RESOURCE_KEYS = {
    "service.name",
    "service.version",
    "service.instance.id",
    "telemetry.sdk.language",
    "telemetry.sdk.name",
    "telemetry.sdk.version",
}

SOURCES = {
    "event": None,  # attr:event
    "feature": "event_name",
    "level": "severity",
    "at": "time",
    "message": "body",
    "duration_ms": "attr:duration_ms",
    "app_version": "resource:service.version",
}


def _run_sdk(encoding: str, *, temporality: str = "delta", gzip: bool = True) -> dict[str, Any]:
    sent = run_exporter(
        [sys.executable, "-c", EMIT], compressed=gzip, temporality=temporality, env={"EMIT_ENCODING": encoding}
    )
    return {"logs": sent.logs, "metrics": sent.metrics}


@pytest.fixture(scope="module", params=["protobuf", "json"])
def sdk_sent(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, _run_sdk(request.param, gzip=request.param == "protobuf")


def test_the_stock_sdk_sends_what_we_decode_exactly(sdk_sent: tuple[str, dict[str, Any]]) -> None:
    encoding, sent = sdk_sent
    logs = sent["logs"]
    assert logs.headers["authorization"] == "Bearer tok123"
    assert logs.headers["content-type"] == (PROTOBUF if encoding == "protobuf" else JSON)
    assert logs.gzipped is (encoding == "protobuf")
    records = wire.decode_logs(logs.body, logs.headers["content-type"]).records
    assert len(records) == 3
    first, second, third = records

    # the SDK's own resource attributes, beside what the environment set
    assert set(first.resource) == SDK_RESOURCE_KEYS
    assert first.resource["service.name"] == "photoedit"
    assert first.service_name == "photoedit"
    assert first.resource["service.version"] == "3.1.4"
    assert first.resource["telemetry.sdk.language"] == "python"
    assert first.resource["telemetry.sdk.name"] == "opentelemetry"
    assert first.resource is second.resource  # one mapping per resource

    assert (first.scope_name, first.scope_version) == ("photoedit.ui", "1.2.3")
    assert first.time_unix_nano == 1795996800123456789
    assert first.observed_time_unix_nano > 0
    assert (first.severity_number, first.severity_text) == (9, "INFO")
    assert first.body == "feature_used"
    assert first.event_name == "photoedit.feature_used"
    assert first.attributes == {"event": "export", "duration_ms": 420, "gpu": True, "ratio": 0.5}
    assert type(first.attributes["duration_ms"]) is int
    assert first.dropped == ("attr:tags",)  # an array: refused per attribute, counted

    # no timestamp given: the SDK sets only the observed time, which then counts
    assert second.time_unix_nano == 0 and second.time == second.observed_time_unix_nano > 0
    assert second.severity_number == 13 and second.severity_text == ""
    assert second.body == '{"n":2,"step":"crop"}'  # a kvlist body: its canonical JSON text
    assert second.attributes == {"event": "crop"} and second.dropped == ()
    assert third.body == "disk full" and third.attributes == {"event": "save", "retries": -3}

    report, dropped = wire.to_report(first, SOURCES)
    assert report == {
        "event": "export",
        "feature": "photoedit.feature_used",
        "level": "INFO",
        "at": "2026-11-30T00:00:00.123456Z",
        "message": "feature_used",
        "duration_ms": 420,
        "app_version": "3.1.4",
    }
    assert dropped == [
        "attr:gpu",
        "attr:ratio",
        "attr:tags",
        "resource:service.instance.id",
        "resource:service.name",
        "resource:telemetry.sdk.language",
        "resource:telemetry.sdk.name",
        "resource:telemetry.sdk.version",
    ]
    report, dropped = wire.to_report(second, SOURCES)
    assert report["level"] == "WARN" and "feature" not in report
    assert report["at"].startswith("20")


def test_the_stock_sdk_metrics_become_points(sdk_sent: tuple[str, dict[str, Any]]) -> None:
    _, sent = sdk_sent
    metrics = sent["metrics"]
    points = wire.decode_metrics(metrics.body, metrics.headers["content-type"]).points
    by_name: dict[str, list[wire.OtlpDataPoint]] = {}
    for point in points:
        by_name.setdefault(point.metric, []).append(point)
    assert set(by_name) == {"photoedit.exports", "photoedit.zoom", "photoedit.open_documents", "photoedit.export_ms"}

    exports = sorted(by_name["photoedit.exports"], key=lambda p: str(p.attributes["format"]))
    assert [(p.attributes, p.value) for p in exports] == [({"format": "jpeg"}, 2), ({"format": "png"}, 3)]
    for point in exports:
        assert (point.kind, point.temporality, point.monotonic, point.unit) == ("sum", 1, True, "{export}")
        assert type(point.value) is int
        assert wire.point_refusal(point) is None
        assert set(point.resource) == SDK_RESOURCE_KEYS
        assert point.scope_name == "photoedit.metrics"
    [zoom] = by_name["photoedit.zoom"]
    assert (zoom.kind, zoom.value, zoom.attributes) == ("gauge", 1.5, {"view": "main"})
    assert wire.point_refusal(zoom) is None
    # an UpDownCounter stays cumulative under the delta preference: a level, kept
    [documents] = by_name["photoedit.open_documents"]
    assert (documents.kind, documents.temporality, documents.monotonic, documents.value) == ("sum", 2, False, 4)
    assert wire.point_refusal(documents) is None
    [histogram] = by_name["photoedit.export_ms"]
    assert (histogram.kind, histogram.count, histogram.sum, histogram.value) == ("histogram", 1, 12.5, None)
    assert histogram.dropped == ("buckets",)
    assert "histogram" in (wire.point_refusal(histogram) or "")

    report, dropped = wire.to_report(
        exports[1], {"metric": "metric", "value": "value", "format": None, "at": "time", "level": "severity"}
    )
    assert report["metric"] == "photoedit.exports" and report["value"] == 3 and report["format"] == "png"
    assert "level" not in report  # no severity on a data point
    assert report["at"].endswith("Z")
    assert dropped == sorted(f"resource:{key}" for key in SDK_RESOURCE_KEYS)


def test_a_cumulative_counter_is_refused_with_what_to_set() -> None:
    sent = _run_sdk("protobuf", temporality="cumulative", gzip=False)
    points = wire.decode_metrics(sent["metrics"].body, PROTOBUF).points
    exports = [p for p in points if p.metric == "photoedit.exports"]
    assert exports and all(p.temporality == 2 and p.monotonic for p in exports)
    for point in exports:
        refusal = wire.point_refusal(point)
        assert refusal is not None and "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta" in refusal


def test_protobuf_and_json_decoders_agree_on_the_sdk_bodies(sdk_sent: tuple[str, dict[str, Any]]) -> None:
    """Each stock body in the other encoding too, converted by opentelemetry-proto's json_format
    (with the option OTLP/JSON needs: enums as integers; the SDK sent no trace ids, which
    json_format would misread as base64): both decoders give the same records."""
    encoding, sent = sdk_sent
    for signal, message_type, decode in (
        ("logs", ExportLogsServiceRequest, wire.decode_logs),
        ("metrics", ExportMetricsServiceRequest, wire.decode_metrics),
    ):
        body = sent[signal].body
        if encoding == "protobuf":
            message = message_type.FromString(body)
            other, other_type = (
                json.dumps(json_format.MessageToDict(message, use_integers_for_enums=True)).encode(),
                JSON,
            )
        else:
            message = json_format.Parse(body, message_type(), ignore_unknown_fields=False)
            other, other_type = message.SerializeToString(), PROTOBUF
        own_type = PROTOBUF if encoding == "protobuf" else JSON
        assert decode(other, other_type) == decode(body, own_type)


# ------------------------------------------------------------------------------------------------
# The encoder, parsed strictly by opentelemetry-proto

WINDOW = {"window_start": "2026-11-30T00:00:00Z", "window_end": "2026-12-01T00:00:00Z"}
FIELD_TYPES = {
    "event": "string",
    "duration_ms": "integer",
    "ratio": "number",
    "gpu": "boolean",
    "at": "timestamp",
    "app_version": "version",
    "level": "enum",
    "feature": "string",
    "message": "string",
}
REPORTS: list[dict[str, Any]] = [
    {
        "event": "export",
        "duration_ms": 256,
        "ratio": 0.5,
        "gpu": True,
        "at": "2026-11-30T00:00:00Z",
        "app_version": "3.1",
        "level": "INFO",
        "feature": "photoedit.feature_used",
        "message": "feature_used ✓",
    },
    {"event": "crop", "duration_ms": -3, "ratio": 2.0, "gpu": False, "at": "2026-11-30T13:00:00.250000Z"},
    {"event": "save"},
]


def _logs_body(**overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "batch_id": "3f2a9c",
        "app_id": "org.example.photoedit",
        "service_name": "photoedit",
        "reports": REPORTS,
        "field_types": FIELD_TYPES,
        "sources": SOURCES,
        "manifest_version": 3,
        "scope_version": "0.1.0",
        **WINDOW,
    }
    arguments.update(overrides)
    return wire.encode_logs(**arguments)


def test_the_logs_encoder_writes_strict_otlp_json_that_round_trips() -> None:
    body = _logs_body()
    assert body == canonical_bytes(json.loads(body))  # canonical: the bytes the person approved
    message = json_format.Parse(body, ExportLogsServiceRequest(), ignore_unknown_fields=False)
    [resource_logs] = message.resource_logs
    resource = {kv.key: kv.value for kv in resource_logs.resource.attributes}
    assert resource["telemetry_tray.batch_id"].string_value == "3f2a9c"
    assert resource["service.name"].string_value == "photoedit"
    assert resource["telemetry_tray.manifest_version"].int_value == 3
    [scope_logs] = resource_logs.scope_logs
    assert (scope_logs.scope.name, scope_logs.scope.version) == ("telemetry-tray", "0.1.0")
    first = scope_logs.log_records[0]
    assert first.time_unix_nano == 1795996800 * 10**9
    assert (first.severity_number, first.severity_text, first.event_name) == (9, "INFO", "photoedit.feature_used")
    assert first.body.string_value == "feature_used ✓"
    attributes = {kv.key: kv.value for kv in first.attributes}
    assert attributes["duration_ms"].WhichOneof("value") == "int_value" and attributes["duration_ms"].int_value == 256
    assert attributes["ratio"].double_value == 0.5 and attributes["gpu"].bool_value is True
    assert attributes["app_version"].string_value == "3.1"
    assert set(attributes) == {"event", "duration_ms", "ratio", "gpu", "app_version"}
    assert b'"intValue":"256"' in body  # int64 as a decimal string

    # our decoder reads it back, from the JSON and from the protobuf the strict parser made; out,
    # every field is an attribute named as the field (resource:service.version too), but for the
    # ones placed back in the record (time, event_name, severity, body)
    placed = ("time", "event_name", "severity", "body")
    back_sources = {name: SOURCES.get(name) if SOURCES.get(name) in placed else None for name in FIELD_TYPES}
    for records in (
        wire.decode_logs(body, JSON).records,
        wire.decode_logs(message.SerializeToString(), PROTOBUF).records,
    ):
        back = [wire.to_report(record, back_sources) for record in records]
        assert [report for report, _ in back] == REPORTS
        assert {name for _, dropped in back for name in dropped} == {
            f"resource:{key}"
            for key in (
                "service.name",
                "telemetry_tray.app_id",
                "telemetry_tray.batch_id",
                "telemetry_tray.manifest_version",
                "telemetry_tray.window.end",
                "telemetry_tray.window.start",
            )
        }


def test_the_logs_encoder_without_sources_puts_every_field_in_attributes() -> None:
    body = _logs_body(sources=None, reports=REPORTS[:1])
    message = json_format.Parse(body, ExportLogsServiceRequest(), ignore_unknown_fields=False)
    record = message.resource_logs[0].scope_logs[0].log_records[0]
    assert record.time_unix_nano == 0 and not record.HasField("body") and record.event_name == ""
    assert sorted(kv.key for kv in record.attributes) == sorted(REPORTS[0])
    assert _logs_body(reports=[]) == _logs_body(reports=[])  # an empty batch is a valid, empty request
    json_format.Parse(_logs_body(reports=[]), ExportLogsServiceRequest(), ignore_unknown_fields=False)


def test_the_metrics_encoder_writes_delta_monotonic_sums_that_parse_strictly() -> None:
    aggregates = {"event": {"export": 30, "(other)": 12, "crop": 7}, "gpu": {"true": 40, "false": 9}}
    body = wire.encode_metrics(
        batch_id="3f2a9c",
        app_id="org.example.photoedit",
        service_name="photoedit",
        aggregates=aggregates,
        manifest_version=3,
        **WINDOW,
    )
    assert body == canonical_bytes(json.loads(body))
    message = json_format.Parse(body, ExportMetricsServiceRequest(), ignore_unknown_fields=False)
    metrics = message.resource_metrics[0].scope_metrics[0].metrics
    assert [m.name for m in metrics] == ["telemetry_tray.reports.by_event", "telemetry_tray.reports.by_gpu"]
    for metric in metrics:
        assert metric.WhichOneof("data") == "sum" and metric.unit == "{report}"
        assert metric.sum.aggregation_temporality == 1 and metric.sum.is_monotonic
        for point in metric.sum.data_points:
            assert point.start_time_unix_nano == 1795996800 * 10**9
            assert point.time_unix_nano == 1796083200 * 10**9
    decoded = wire.decode_metrics(body, JSON).points
    assert decoded == wire.decode_metrics(message.SerializeToString(), PROTOBUF).points
    counts: dict[str, dict[str, int]] = {}
    for point in decoded:
        assert wire.point_refusal(point) is None
        [(field, value)] = point.attributes.items()
        assert isinstance(point.value, int) and isinstance(value, str)
        counts.setdefault(field, {})[value] = point.value
        assert point.resource["telemetry_tray.batch_id"] == "3f2a9c"
    assert counts == aggregates  # "(other)" included


# ------------------------------------------------------------------------------------------------
# The specification's example bodies

# open-telemetry/opentelemetry-proto examples/logs.json (commit 36ea555013eacfbe68fc479014d3532e4650af8e)
SPEC_LOGS = """{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name",
"value":{"stringValue":"my.service"}}]},
"scopeLogs":[{"scope":{"name":"my.library","version":"1.0.0","attributes":[{"key":"my.scope.attribute",
"value":{"stringValue":"some scope attribute"}}]},"logRecords":[{"timeUnixNano":1544712660300000000,
"observedTimeUnixNano":1544712660300000000,"severityText":"Information","traceId":"5B8EFFF798038103D269B633813FC60C",
"spanId":"EEE19B7EC3C1B174","body":{"stringValue":"Example log record"},"attributes":[
{"key":"string.attribute","value":{"stringValue":"some string"}},{"key":"boolean.attribute","value":{"boolValue":true}},
{"key":"int.attribute","value":{"intValue":10}},{"key":"double.attribute","value":{"doubleValue":637.704}},
{"key":"array.attribute","value":{"arrayValue":{"values":[{"stringValue":"many"},{"stringValue":"values"}]}}},
{"key":"map.attribute","value":{"kvlistValue":{"values":[{"key":"some.map.key","value":{"stringValue":"some value"}}]}}}
]}]}]}]}"""

# open-telemetry/opentelemetry-proto examples/metrics.json (commit c8ab5d6722f2f2c1e342d27d73bbd64c2706b4dd)
SPEC_METRICS = """{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name",
"value":{"stringValue":"my.service"}}]},
"scopeMetrics":[{"scope":{"name":"my.library","version":"1.0.0","attributes":[{"key":"my.scope.attribute",
"value":{"stringValue":"some scope attribute"}}]},"metrics":[
{"name":"my.counter","unit":"1","description":"I am a Counter","sum":{"aggregationTemporality":1,"isMonotonic":true,
"dataPoints":[{"asDouble":5,"startTimeUnixNano":1544712660300000000,"timeUnixNano":1544712660300000000,
"attributes":[{"key":"my.counter.attr","value":{"stringValue":"some value"}}]}]}},
{"name":"my.gauge","unit":"1","description":"I am a Gauge","gauge":{"dataPoints":[{"asDouble":10,
"timeUnixNano":1544712660300000000,"attributes":[{"key":"my.gauge.attr","value":{"stringValue":"some value"}}]}]}},
{"name":"my.histogram","unit":"1","description":"I am a Histogram","histogram":{"aggregationTemporality":1,
"dataPoints":[{"startTimeUnixNano":1544712660300000000,"timeUnixNano":1544712660300000000,"count":2,"sum":2,
"bucketCounts":[1,1],"explicitBounds":[1],"min":0,"max":2,"attributes":[{"key":"my.histogram.attr",
"value":{"stringValue":"some value"}}]}]}}]}]}]}"""

# open-telemetry/opentelemetry-proto examples/events.json (commit c74a3ebd55e4e265bf826c7a4cc4de876f1193d9),
# its log record only: the example writes kvlistValue as a bare list, not {"values": [...]}.
SPEC_EVENTS_RECORD = {
    "timeUnixNano": "1544712660300000000",
    "observedTimeUnixNano": "1544712660300000000",
    "attributes": [{"key": "event.name", "value": {"stringValue": "browser.page_view"}}],
    "body": {
        "kvlistValue": [
            {"key": "type", "value": {"intValue": "0"}},
            {"key": "url", "value": {"stringValue": "https://www.guidgenerator.com/online-guid-generator.aspx"}},
        ]
    },
}


def test_the_specifications_logs_example_decodes_as_expected() -> None:
    [record] = wire.decode_logs(SPEC_LOGS.encode(), JSON).records
    assert record.resource == {"service.name": "my.service"}
    assert (record.scope_name, record.scope_version) == ("my.library", "1.0.0")
    assert record.time_unix_nano == record.observed_time_unix_nano == 1544712660300000000  # numbers, not strings
    assert (record.severity_number, record.severity_text) == (0, "Information")
    assert record.body == "Example log record"
    assert record.attributes == {
        "string.attribute": "some string",
        "boolean.attribute": True,
        "int.attribute": 10,
        "double.attribute": 637.704,
    }
    assert set(record.dropped) == {
        "scope:my.scope.attribute",
        "trace_id",
        "span_id",
        "attr:array.attribute",
        "attr:map.attribute",
    }
    report, dropped = wire.to_report(record, {"s": "attr:string.attribute", "at": "time", "level": "severity"})
    assert report == {"s": "some string", "at": "2018-12-13T14:51:00.300000Z"}  # no number: no severity
    assert "trace_id" in dropped and "body" in dropped
    assert "severity" not in dropped  # a field takes it; severityText alone gives no level
    # json_format, with ignore_unknown_fields, reads the same request; through protobuf it decodes alike
    message = json_format.Parse(SPEC_LOGS, ExportLogsServiceRequest(), ignore_unknown_fields=True)
    assert wire.decode_logs(message.SerializeToString(), PROTOBUF).records == (record,)


def test_the_specifications_metrics_example_decodes_as_expected() -> None:
    counter, gauge, histogram = wire.decode_metrics(SPEC_METRICS.encode(), JSON).points
    assert (counter.metric, counter.kind, counter.temporality, counter.monotonic) == ("my.counter", "sum", 1, True)
    assert counter.value == 5.0 and type(counter.value) is float  # asDouble written as 5
    assert counter.attributes == {"my.counter.attr": "some value"}
    assert counter.start_time_unix_nano == counter.time_unix_nano == 1544712660300000000
    assert (gauge.kind, gauge.value, gauge.attributes) == ("gauge", 10.0, {"my.gauge.attr": "some value"})
    assert (histogram.kind, histogram.count, histogram.sum, histogram.min, histogram.max) == ("histogram", 2, 2, 0, 2)
    assert set(histogram.dropped) == {"scope:my.scope.attribute", "buckets"}
    assert [wire.point_refusal(p) is None for p in (counter, gauge, histogram)] == [True, True, False]
    message = json_format.Parse(SPEC_METRICS, ExportMetricsServiceRequest(), ignore_unknown_fields=True)
    assert wire.decode_metrics(message.SerializeToString(), PROTOBUF).points == (counter, gauge, histogram)


def test_the_specifications_events_example_is_refused_as_json_format_refuses_it() -> None:
    body = _request(SPEC_EVENTS_RECORD)
    with pytest.raises(json_format.ParseError):
        json_format.Parse(body, ExportLogsServiceRequest(), ignore_unknown_fields=True)
    with pytest.raises(MalformedError, match=r"logRecords\[0\]\.body.*kvlistValue must be an object"):
        wire.decode_logs(body, JSON)
    fixed = copy.deepcopy(SPEC_EVENTS_RECORD)
    fixed["body"]["kvlistValue"] = {"values": fixed["body"]["kvlistValue"]}
    [record] = wire.decode_logs(_request(fixed), JSON).records
    assert record.body == '{"type":0,"url":"https://www.guidgenerator.com/online-guid-generator.aspx"}'
    assert record.attributes == {"event.name": "browser.page_view"}


# ------------------------------------------------------------------------------------------------
# The quirks of OTLP/JSON, the limits, the errors


def _request(*records: dict[str, Any], resource: list[Any] | None = None) -> bytes:
    resource_logs = {"scopeLogs": [{"logRecords": list(records)}]}
    if resource is not None:
        resource_logs["resource"] = {"attributes": resource}
    return json.dumps({"resourceLogs": [resource_logs]}).encode()


def _attr(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


def test_json_quirks_int64_both_ways_enums_as_numbers_unknown_keys_ignored_nulls_absent() -> None:
    record = {
        "timeUnixNano": "1544712660300000000",
        "severityNumber": 17,
        "attributes": [
            _attr("as_string", {"intValue": "-9223372036854775808"}),
            _attr("as_number", {"intValue": 420}),
            _attr("integral_float", {"intValue": 5.0}),  # what a JS exporter may send
            _attr("nan", {"doubleValue": "NaN"}),
            _attr("inf", {"doubleValue": "-Infinity"}),
            _attr("double_string", {"doubleValue": "1.25"}),
            _attr("bytes", {"bytesValue": "AAEC"}),
            _attr("empty", {}),
            _attr("twice", {"stringValue": "a"}),
            _attr("twice", {"stringValue": "b"}),
            _attr("future", {"someNewValue": 1}),
        ],
        "eventName": None,
        "droppedAttributesCount": 3,
        "dropped_attributes_count": 7,  # snake_case: unknown, ignored
        "someFutureField": {"deep": [1, 2, 3]},
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "flags": 1,
    }
    [decoded] = wire.decode_logs(_request(record), JSON).records
    assert decoded.attributes == {"as_string": -(2**63), "as_number": 420, "integral_float": 5, "double_string": 1.25}
    assert decoded.severity_number == 17 and decoded.event_name == ""
    assert set(decoded.dropped) == {
        "attr:nan",
        "attr:inf",
        "attr:bytes",
        "attr:empty",
        "attr:twice",
        "attr:future",
        "trace_id",
        "flags",
    }
    assert wire.to_report(decoded, {"level": "severity"})[0] == {"level": "ERROR"}
    snake = json.dumps({"resource_logs": [{"scope_logs": []}]}).encode()
    assert wire.decode_logs(snake, JSON) == wire.OtlpLogs((), ("resource_logs",))


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"severityNumber": "SEVERITY_NUMBER_INFO"}, "enums as numbers"),
        ({"timeUnixNano": "-1"}, "out of range"),
        ({"timeUnixNano": "1e9"}, "must be an integer"),
        ({"attributes": [_attr("big", {"intValue": str(2**63)})]}, "out of range"),
        ({"attributes": [_attr("x", {"stringValue": 3})]}, "stringValue must be a string"),
        ({"attributes": [_attr("x", {"stringValue": "a", "intValue": "1"})]}, "give one"),
        ({"attributes": {"key": "x"}}, "attributes must be a list"),
        ({"body": "plain text"}, "value must be an object"),
    ],
)
def test_a_wrong_json_type_is_refused_naming_where(record: dict[str, Any], problem: str) -> None:
    with pytest.raises(MalformedError, match=r"resourceLogs\[0\]\.scopeLogs\[0\]\.logRecords\[0\]") as caught:
        wire.decode_logs(_request(record), JSON)
    assert problem in caught.value.message


@pytest.mark.parametrize(
    ("body", "content_type", "error", "text"),
    [
        (b"\xff\xfe", JSON, MalformedError, "not UTF-8"),
        (b'{"resourceLogs": [}', JSON, MalformedError, "not valid JSON"),
        (b'{"resourceLogs": NaN}', JSON, MalformedError, "NaN"),
        (b'{"a": 1, "a": 2}', JSON, MalformedError, "appears twice"),
        (b"[]", JSON, MalformedError, "must be an object"),
        (b"\x0a\x05\x0a\x03", PROTOBUF, MalformedError, "not an OTLP/protobuf"),
        (b"{}", "text/plain", MalformedError, "not OTLP/HTTP"),
        (b" " * (1024 * 1024 + 1), JSON, TooLargeError, "at most 1048576"),
    ],
)
def test_bodies_that_are_not_requests_raise_the_projects_errors(
    body: bytes, content_type: str, error: type[Exception], text: str
) -> None:
    for decode in (wire.decode_logs, wire.decode_metrics):
        with pytest.raises(error, match=text):
            decode(body, content_type)


def test_an_empty_body_is_an_empty_request_in_both_encodings() -> None:
    assert wire.decode_logs(b"", PROTOBUF) == wire.OtlpLogs(())
    assert wire.decode_metrics(b"{}", "Application/JSON; charset=utf-8") == wire.OtlpMetrics(())
    assert wire.media_type("application/x-protobuf") == "protobuf"
    assert wire.media_type("application/grpc") is None


def _nested_json(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


def _nested_proto(depth: int) -> AnyValue:
    value = AnyValue(string_value="leaf")
    for _ in range(depth):
        outer = AnyValue()
        outer.kvlist_value.values.append(KeyValue(key="k", value=value))
        value = outer
    return value


def _proto_logs(body: AnyValue | None = None, attributes: dict[str, AnyValue] | None = None, records: int = 1) -> bytes:
    request = ExportLogsServiceRequest()
    scope_logs = request.resource_logs.add().scope_logs.add()
    for _ in range(records):
        record = scope_logs.log_records.add()
        if body is not None:
            record.body.CopyFrom(body)
        for key, value in (attributes or {}).items():
            record.attributes.append(KeyValue(key=key, value=value))
    return request.SerializeToString()


def test_nesting_within_the_limit_is_kept_as_json_text_and_beyond_it_refused() -> None:
    depth = wire.MAX_ANY_DEPTH
    [record] = wire.decode_logs(_request({"body": _nested_json(depth)}), JSON).records
    assert record.body == '{"k":' * depth + '"leaf"' + "}" * depth
    assert wire.decode_logs(_proto_logs(_nested_proto(depth)), PROTOBUF).records[0].body == record.body
    with pytest.raises(TooLargeError, match="nested more than"):
        wire.decode_logs(_request({"body": _nested_json(depth + 1)}), JSON)
    with pytest.raises(TooLargeError, match="nested more than"):
        wire.decode_logs(_proto_logs(_nested_proto(depth + 1)), PROTOBUF)
    # in an attribute, too deep is refused too (it would be dropped, but is over a limit)
    with pytest.raises(TooLargeError):
        wire.decode_logs(_request({"attributes": [_attr("a", _nested_json(depth + 1))]}), JSON)
    # far deeper than the JSON parser's own guard, or protobuf's: still our error
    deep = b'{"resourceLogs":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(MalformedError, match="nested too deeply"):
        wire.decode_logs(deep, JSON)
    with pytest.raises(MalformedError, match="not an OTLP/protobuf"):  # past upb's own depth limit (100)
        wire.decode_logs(_raw_nested_protobuf(300), PROTOBUF)
    with pytest.raises(TooLargeError, match="nested more than"):
        wire.decode_logs(_raw_nested_protobuf(20), PROTOBUF)


def _raw_nested_protobuf(depth: int) -> bytes:
    """Bytes that no protobuf library will write: AnyValue kvlists ``depth`` deep, by hand."""

    def field(number: int, payload: bytes) -> bytes:
        tag, size = bytes([number << 3 | 2]), len(payload)
        length = bytearray()
        while True:
            length.append(size & 0x7F | (0x80 if size > 0x7F else 0))
            size >>= 7
            if not size:
                break
        return tag + bytes(length) + payload

    value = field(1, b"leaf")  # AnyValue.string_value
    for _ in range(depth):
        key_value = field(1, b"k") + field(2, value)  # KeyValue{key, value}
        value = field(6, field(1, key_value))  # AnyValue.kvlist_value{values}
    record = field(5, value)  # LogRecord.body
    return field(1, field(2, field(2, record)))  # request.resource_logs.scope_logs.log_records


def test_counts_over_their_limits_are_refused() -> None:
    many = [_attr(f"k{i}", {"intValue": i}) for i in range(wire.MAX_ATTRIBUTES + 1)]
    with pytest.raises(TooLargeError, match=r"attributes; at most 128"):
        wire.decode_logs(_request({"attributes": many}), JSON)
    with pytest.raises(TooLargeError, match=r"at most 128"):
        wire.decode_logs(_request({}, resource=many), JSON)
    attributes = {f"k{i}": AnyValue(int_value=i) for i in range(wire.MAX_ATTRIBUTES + 1)}
    with pytest.raises(TooLargeError, match=r"at most 128"):
        wire.decode_logs(_proto_logs(attributes=attributes), PROTOBUF)
    with pytest.raises(TooLargeError, match="more than 10000 log records"):
        wire.decode_logs(_proto_logs(records=wire.MAX_RECORDS + 1), PROTOBUF)
    with pytest.raises(TooLargeError, match="more than 10000 log records"):
        wire.decode_logs(_request(*[{}] * (wire.MAX_RECORDS + 1)), JSON)
    wide = {"arrayValue": {"values": [{"intValue": 1}] * (wire.MAX_ANY_ITEMS + 1)}}
    with pytest.raises(TooLargeError, match="members"):
        wire.decode_logs(_request({"body": wide}), JSON)
    with pytest.raises(TooLargeError, match="attribute key"):
        wire.decode_logs(_request({"attributes": [_attr("k" * 257, {"intValue": 1})]}), JSON)
    assert len(wire.decode_logs(_proto_logs(records=wire.MAX_RECORDS), PROTOBUF).records) == wire.MAX_RECORDS


def test_sources_parse_or_say_what_is_wrong() -> None:
    assert wire.parse_source("attr:app.feature") == ("attr", "app.feature")
    assert wire.parse_source("resource:service.version") == ("resource", "service.version")
    assert wire.parse_source("event_name") == ("event_name", "")
    for bad in ("attr:", "resource", "body:x", "scope:name", "Attr:x", ""):
        with pytest.raises(ValueError, match="source"):
            wire.parse_source(bad)
    assert [wire.severity_name(n) for n in (0, 1, 4, 5, 9, 13, 17, 21, 24, 25)] == [
        None,
        "TRACE",
        "TRACE",
        "DEBUG",
        "INFO",
        "WARN",
        "ERROR",
        "FATAL",
        "FATAL",
        None,
    ]


def test_importing_the_module_loads_no_protobuf() -> None:
    code = (
        "import sys, tray_app.core.rules.otlp_wire as w\n"
        "assert not any(m.startswith(('google', 'opentelemetry')) for m in sys.modules), sorted(sys.modules)\n"
        "w.decode_logs(b'{}', 'application/json')\n"
        "assert 'google.protobuf' not in sys.modules\n"
        "w.decode_logs(b'', 'application/x-protobuf')\n"
        "assert 'google.protobuf' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------------------------------
# Hypothesis: whatever arrives, only the project's errors

PROJECT_ERRORS = (MalformedError, TooLargeError)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_both(body: bytes) -> None:
    for decode in (wire.decode_logs, wire.decode_metrics):
        for content_type in (JSON, PROTOBUF):
            try:
                result = decode(body, content_type)
            except PROJECT_ERRORS:
                continue
            _check_decoded(result)


def _check_decoded(result: wire.OtlpLogs | wire.OtlpMetrics) -> None:
    items = result.records if isinstance(result, wire.OtlpLogs) else result.points
    for item in items:
        report, dropped = wire.to_report(item, {"a": None, "b": "body", "t": "time", "m": "metric", "v": "value"})
        canonical_bytes(report)  # every value is JSON, finite
        json.loads(canonical_bytes(report))
        assert all(isinstance(name, str) for name in dropped)
        if isinstance(item, wire.OtlpDataPoint):
            wire.point_refusal(item)


@FUZZ
@given(st.binary(max_size=2048))
def test_junk_raises_only_the_projects_errors(body: bytes) -> None:
    _decode_both(body)


def _valid_protobuf_bodies() -> list[bytes]:
    logs = json_format.Parse(SPEC_LOGS, ExportLogsServiceRequest(), ignore_unknown_fields=True)
    metrics = json_format.Parse(SPEC_METRICS, ExportMetricsServiceRequest(), ignore_unknown_fields=True)
    return [logs.SerializeToString(), metrics.SerializeToString(), _proto_logs(_nested_proto(6))]


@FUZZ
@given(st.sampled_from(_valid_protobuf_bodies()), st.data())
def test_truncated_and_corrupted_protobuf_raises_only_the_projects_errors(body: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(body)))
    _decode_both(body[:cut])
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(body) - 1), st.integers(0, 255)), max_size=4))
    corrupted = bytearray(body)
    for at, byte in flips:
        corrupted[at] = byte
    _decode_both(bytes(corrupted))


_KEYS = st.sampled_from(
    [
        "resourceLogs", "resourceMetrics", "resource", "attributes", "scopeLogs", "scopeMetrics", "scope", "name",
        "version", "logRecords", "metrics", "timeUnixNano", "observedTimeUnixNano", "severityNumber",
        "severityText", "body", "eventName", "traceId", "spanId", "flags", "key", "value", "stringValue",
        "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue", "values", "sum", "gauge",
        "histogram", "summary", "exponentialHistogram", "dataPoints", "asInt", "asDouble", "count", "min", "max",
        "aggregationTemporality", "isMonotonic", "exemplars", "bucketCounts", "startTimeUnixNano", "unit",
    ]
)  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "10", "-1", "1e3", "", "x", "18446744073709551616"])
    | st.text(max_size=8)
)
_OTLP_SHAPED = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS | st.text(max_size=4), inner, max_size=5),
    max_leaves=40,
)


@FUZZ
@given(_OTLP_SHAPED)
def test_otlp_shaped_json_raises_only_the_projects_errors(tree: object) -> None:
    _decode_both(json.dumps({"resourceLogs": [tree], "resourceMetrics": [tree]}).encode())
    _decode_both(json.dumps(tree).encode())


_ANY = st.recursive(
    st.builds(lambda s: {"stringValue": s}, st.text(max_size=6))
    | st.builds(lambda i: {"intValue": str(i)}, st.integers(-(2**63), 2**63 - 1))
    | st.builds(lambda f: {"doubleValue": f}, st.floats(allow_nan=False, allow_infinity=False))
    | st.builds(lambda b: {"boolValue": b}, st.booleans())
    | st.just({"bytesValue": "AAE="}),
    lambda inner: (
        st.builds(lambda v: {"arrayValue": {"values": v}}, st.lists(inner, max_size=4))
        | st.builds(
            lambda kv: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kv.items()]}},
            st.dictionaries(st.text(max_size=3), inner, max_size=4),
        )
    ),
    max_leaves=30,
)


@FUZZ
@given(_ANY, st.dictionaries(st.text(max_size=5), _ANY, max_size=6))
def test_any_values_decode_alike_from_json_and_from_protobuf(body: dict[str, Any], attributes: dict[str, Any]) -> None:
    record = {"body": body, "attributes": [_attr(key, value) for key, value in attributes.items()]}
    as_json = _request(record)
    try:
        from_json = wire.decode_logs(as_json, JSON)
    except TooLargeError:
        with pytest.raises(TooLargeError):
            wire.decode_logs(json_format.Parse(as_json, ExportLogsServiceRequest()).SerializeToString(), PROTOBUF)
        return
    message = json_format.Parse(as_json, ExportLogsServiceRequest(), ignore_unknown_fields=False)
    assert wire.decode_logs(message.SerializeToString(), PROTOBUF) == wire.OtlpLogs(from_json.records)
    _check_decoded(from_json)
    [decoded] = from_json.records
    for key, value in attributes.items():
        flat = next(iter(value)) in ("stringValue", "intValue", "doubleValue", "boolValue")
        assert (key in decoded.attributes) is flat or f"attr:{key}" in decoded.dropped


@FUZZ
@given(st.integers(1, 3000))
def test_huge_and_deep_json_raises_only_the_projects_errors(depth: int) -> None:
    _decode_both(b'{"resourceLogs":[' + b'{"a":' * depth + b"1" + b"}" * depth + b"]}")
    _decode_both(json.dumps(_request({"body": _nested_json(min(depth, 400))}).decode()).encode())
    _decode_both(_request({"body": _nested_json(min(depth, 400))}))
