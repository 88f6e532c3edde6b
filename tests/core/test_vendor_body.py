"""What a ``format = "otlp"`` vendor receives: an OTLP/HTTP JSON request that protobuf's own
JSON parser (nobody here wrote it) takes strictly, the same bytes by the fast path and the
reference, sent to the collector's signal URL, and a collector's partial success read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from tests.support.builders import tiny
from tray_app import __version__
from tray_app.core.rules.clock import from_iso
from tray_app.core.rules.columns import ReportColumns
from tray_app.core.rules.manifest import Manifest
from tray_app.core.rules.otlp_answer import MAX_MESSAGE, read_partial_success
from tray_app.core.rules.otlp_wire import decode_logs, to_report
from tray_app.core.rules.payload import reference_render, scoped_records
from tray_app.core.rules.reports import Report
from tray_app.core.rules.scope import Scope, check_scope
from tray_app.core.rules.vendor_body import destination, reference_vendor_body, vendor_body

from .test_columns import _report
from .test_scope_payload import FIELDS, FRAME, _scope

OTLP = {"format": "otlp", "otlp": {"service_names": ["tiny-svc"]}, "endpoint": "https://collector.example.org"}
# The log record's own places, so a round trip puts the values back where an SDK puts them.
PLACED = [
    {**field, "source": {"t": "time", "e": "event_name", "s": "body"}[field["name"]]}
    if field["name"] in ("t", "e", "s")
    else field
    for field in FIELDS
]


def _otlp(fields: list[dict[str, Any]] = FIELDS, **overrides: Any) -> Manifest:
    return tiny(fields=fields, **{**OTLP, **overrides})


def _strict(body: bytes, message: Any) -> Any:
    """The body parsed by protobuf's JSON parser, refusing any field OTLP does not have."""
    return json_format.Parse(body.decode("utf-8"), message(), ignore_unknown_fields=False)


def _instant(report: Report) -> Report:
    """A timestamp as the instant it names: a record's time field is nanoseconds, so
    "13:05:09.250Z" comes back spelt "13:05:09.250000Z"."""
    return {k: from_iso(v) if k == "t" and isinstance(v, str) else v for k, v in report.items()}  # type: ignore[misc]


def _resource(request: Any) -> dict[str, str]:
    return {a.key: json_format.MessageToDict(a.value) for a in request.resource.attributes}  # type: ignore[no-any-return]


@settings(max_examples=150, deadline=None)
@given(reports=st.lists(_report, max_size=25), scope=_scope(), min_count=st.integers(2, 5), placed=st.booleans())
def test_the_columns_give_the_reference_otlp_bytes_and_protobuf_parses_them(
    reports: list[Report], scope: Scope, min_count: int, placed: bool
) -> None:
    m = _otlp(PLACED if placed else FIELDS, min_count=min_count)
    check_scope(scope, m)
    columns = ReportColumns.decode(m, [json.dumps(r) for r in reports])
    fast = vendor_body(columns, FRAME, m, scope)
    assert fast == reference_vendor_body(FRAME, m, scope, reports)
    # Canonical JSON: the digest is of exactly the bytes a re-encoding gives.
    assert fast.body == json.dumps(fast.obj(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if scope.mode == "aggregate":
        metrics = _strict(fast.body, ExportMetricsServiceRequest)
        [resource_metrics] = metrics.resource_metrics
        assert _resource(resource_metrics)["telemetry_tray.batch_id"] == {"stringValue": FRAME.batch_id}
        names = [metric.name for metric in resource_metrics.scope_metrics[0].metrics]
        assert names == sorted(f"telemetry_tray.reports.by_{name}" for name in scope.fields)
        for metric in resource_metrics.scope_metrics[0].metrics:
            assert metric.sum.is_monotonic and metric.sum.aggregation_temporality == 1  # delta
            assert all(point.as_int >= min_count for point in metric.sum.data_points)
    else:
        logs = _strict(fast.body, ExportLogsServiceRequest)
        [resource_logs] = logs.resource_logs
        assert len(resource_logs.scope_logs[0].log_records) == len(reports)
        # Decoded as a receiver would, through the same sources, they are the approved records.
        decoded = decode_logs(fast.body, "application/json")
        sources = {spec.name: spec.source for spec in m.fields}
        back = [_instant(to_report(record, sources)[0]) for record in decoded.records]
        assert back == [_instant(record) for record in scoped_records(m, scope, reports)]


def test_the_resource_says_whose_batch_and_what_scope_and_the_fields_keep_their_places() -> None:
    m = _otlp(PLACED)
    scope = Scope(("e", "i", "t"), {"t": "hour"})
    body = reference_vendor_body(FRAME, m, scope, [{"e": "b", "i": 7, "t": "2026-11-24T13:45:12Z", "who": "x"}]).body
    [resource_logs] = _strict(body, ExportLogsServiceRequest).resource_logs
    resource = _resource(resource_logs)
    assert resource["service.name"] == {"stringValue": "tiny-svc"}
    assert resource["telemetry_tray.app_id"] == {"stringValue": FRAME.app_id}
    assert resource["telemetry_tray.window.start"] == {"stringValue": FRAME.window_start}
    assert json.loads(resource["telemetry_tray.scope"]["stringValue"]) == scope.to_obj()
    assert resource_logs.scope_logs[0].scope.name == "telemetry-tray"
    assert resource_logs.scope_logs[0].scope.version == __version__
    [record] = resource_logs.scope_logs[0].log_records
    hour = datetime(2026, 11, 24, 13, tzinfo=UTC)  # coarsened to the hour
    assert record.event_name == "b" and record.time_unix_nano == int(hour.timestamp()) * 10**9
    assert [(a.key, a.value.int_value) for a in record.attributes] == [("i", 7)]
    assert b"who" not in body  # not in the scope: not anywhere


def test_a_format_otlp_manifest_without_service_names_sends_under_its_app_id() -> None:
    m = tiny(fields=FIELDS, format="otlp", endpoint="https://collector.example.org")
    body = reference_vendor_body(FRAME, m, Scope(("i",)), [{"i": 1}]).body
    [resource_logs] = _strict(body, ExportLogsServiceRequest).resource_logs
    assert _resource(resource_logs)["service.name"] == {"stringValue": "org.example.tiny"}


def test_the_telemetry_tray_format_is_unchanged() -> None:
    m = tiny(fields=FIELDS)
    reports: list[Report] = [{"i": 1, "s": "a"}, {"i": 2}]
    scope = Scope(("i", "s"))
    columns = ReportColumns.decode(m, [json.dumps(r) for r in reports])
    assert vendor_body(columns, FRAME, m, scope) == reference_render(FRAME, m, scope, reports)
    assert destination(m, scope) == m.endpoint


@pytest.mark.parametrize(
    ("endpoint", "logs", "metrics"),
    [
        ("https://c.example.org", "https://c.example.org/v1/logs", "https://c.example.org/v1/metrics"),
        ("https://c.example.org/", "https://c.example.org/v1/logs", "https://c.example.org/v1/metrics"),
        ("https://c.example.org/otlp/", "https://c.example.org/otlp/v1/logs", "https://c.example.org/otlp/v1/metrics"),
        ("https://c.example.org:4318/a?t=1", "https://c.example.org:4318/a/v1/logs?t=1", None),
        ("http://127.0.0.1:9/", "http://127.0.0.1:9/v1/logs", "http://127.0.0.1:9/v1/metrics"),
    ],
)
def test_the_signal_path_is_added_to_the_collectors_base_url(endpoint: str, logs: str, metrics: str | None) -> None:
    m = _otlp(endpoint=endpoint)
    assert destination(m, Scope(("i",))) == logs
    if metrics is not None:
        assert destination(m, Scope(("i",), mode="aggregate")) == metrics


# -- a collector's answer --------------------------------------------------------------------


def _proto_answer(rejected: int, message: str, *, metrics: bool = False) -> bytes:
    response: Any = ExportMetricsServiceResponse() if metrics else ExportLogsServiceResponse()
    if metrics:
        response.partial_success.rejected_data_points = rejected
    else:
        response.partial_success.rejected_log_records = rejected
    response.partial_success.error_message = message
    return bytes(response.SerializeToString())


@pytest.mark.parametrize(
    ("body", "content_type", "rejected", "message"),
    [
        (b'{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"too old"}}', "application/json", 3, "too old"),
        (b'{"partialSuccess":{"rejectedDataPoints":2}}', "application/json; charset=utf-8", 2, ""),
        (b'{"partial_success":{"rejected_log_records":1,"error_message":"x"}}', "application/json", 1, "x"),
        (b'{"partialSuccess":{"errorMessage":"  a\\n warning "}}', "application/json", 0, "a warning"),
        (_proto_answer(4, "bad attribute"), "application/x-protobuf", 4, "bad attribute"),
        (_proto_answer(5, "", metrics=True), "application/x-protobuf", 5, ""),
    ],
)
def test_a_partial_success_is_read_with_its_count_and_message(
    body: bytes, content_type: str, rejected: int, message: str
) -> None:
    found = read_partial_success(body, content_type, "log records")
    assert found is not None
    assert (found.rejected, found.message) == (rejected, message)
    assert (str(rejected) in found.text) if rejected else ("warned" in found.text)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "application/json"),
        (b"{}", "application/json"),
        (b'{"partialSuccess":{}}', "application/json"),
        (b'{"partialSuccess":{"rejectedLogRecords":"0"}}', "application/json"),
        (b"<html>ok</html>", "text/html"),
        (b"\xff\x00junk", "application/x-protobuf"),
        (b"", "application/x-protobuf"),
        (b"[1,2]", "application/json"),
        (b'{"partialSuccess":{"rejectedLogRecords":true}}', "application/json"),
    ],
)
def test_full_success_or_an_answer_that_is_not_otlp_is_no_partial_success(body: bytes, content_type: str) -> None:
    assert read_partial_success(body, content_type, "log records") is None


def test_a_long_message_is_cut_for_the_receipt() -> None:
    found = read_partial_success(_proto_answer(1, "x" * 10_000), "application/x-protobuf", "log records")
    assert found is not None and len(found.message) == MAX_MESSAGE and found.message.endswith("…")


@pytest.mark.parametrize("count", ["²", "١٢", "1e3", "-4", " 7 ", "9" * 40])
def test_a_count_that_is_not_a_plain_decimal_never_raises(count: str) -> None:
    body = json.dumps({"partialSuccess": {"rejectedLogRecords": count, "errorMessage": "m"}}).encode()
    found = read_partial_success(body, "application/json", "log records")
    assert found is not None and found.message == "m"
    assert found.rejected == (7 if count == " 7 " else int(count[:19]) if count.isdigit() and count.isascii() else 0)
