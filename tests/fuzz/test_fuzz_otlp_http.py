"""Fuzzing the OTLP/HTTP receiver of ONE running instance (``run --headless`` in a subprocess,
tray_app/ingest/otlp_routes.py) over raw sockets.

Generated ``ExportLogsServiceRequest`` and ``ExportMetricsServiceRequest`` messages (built with
opentelemetry-proto, random service names, attributes of every kind) go to /v1/logs and
/v1/metrics as protobuf or as OTLP/JSON, whole or cut at a drawn point, gzipped or not; and junk
bytes, gzip of junk, hostile JSON text, deep nesting, bodies over the limit, wrong and absent
Content-Types and encodings, wrong tokens, other paths (/v1/traces). Each answer must be one of
200 (with ``partial_success`` where parts were refused), 400, 401, 403, 404, 413 or 415, never a
5xx and never a hang; a 4xx has a JSON body with ``error`` and ``message``; a request refused
whole changes nothing in the database; a 200 stores exactly the records it did not count as
rejected (a resend of the same bytes: none); and the instance still answers GET /v1/health.

The oracle for what a body holds is the reference protobuf parser (for a cut body: whether it
still parses, and how many records it then holds), never the tray's own decoder.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import socket
import sqlite3
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from tests.support.builders import manifest_obj
from tests.support.fuzz_inputs import Tally, junk_values, nasty_text, shown_safely
from tests.support.processes import Proc
from tray_app.core.rules.intake import MAX_BODY_BYTES
from tray_app.core.rules.otlp_wire import MAX_ANY_DEPTH, MAX_RECORDS

pytestmark = pytest.mark.slow

TALLY = Tally("otlp_http")
# Each example costs one request to the instance, two looks at its database and a health check
# (~10 ms on a busy two-core machine); the counts keep the whole file under a minute.
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ALLOWED = {200, 400, 401, 403, 404, 413, 415}
PROTOBUF = "application/x-protobuf"
JSON_TYPE = "application/json"
SEVERITIES = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
SERVICE = "fuzzed"


def _field(name: str, type_: str, source: str | None = None, **more: Any) -> dict[str, Any]:
    made = {"name": name, "type": type_, "description": f"The {name}", **more}
    if source is not None:
        made["source"] = source
    return made


# Every OTLP source, so generated records can become reports, or be rejected by a field.
FUZZ_FIELDS = [
    _field("event", "string"),  # attr:event
    _field("n", "integer"),  # attr:n
    _field("level", "enum", "severity", values=SEVERITIES),
    _field("message", "string", "body"),
    _field("feature", "string", "event_name"),
    _field("at", "timestamp", "time"),
    _field("counter", "string", "metric"),
    _field("value", "number", "value"),
    _field("app_version", "version", "resource:service.version"),
]


# -- the wire --------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(port: int, data: bytes, timeout: float = 10.0) -> Answer | None:
    """Send raw bytes, read one response (skipping ``100 Continue``); None if the server closed
    the connection without one. A server that does not answer within ``timeout`` fails the test."""
    buf = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may answer before reading all
            sock.sendall(data)
        while True:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                if status == 100:
                    buf = rest
                    continue
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if len(rest) >= length:
                    return Answer(status, headers, rest[:length])
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            buf += chunk


def http_request(path: str, body: bytes, headers: list[tuple[str, str]], host: str, *, length: bool = True) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", *(f"{name}: {value}" for name, value in headers)]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


@dataclass
class Sent:
    """What one request did: the answer, and the database's row counts before and after."""

    answer: Answer
    before: dict[str, int]
    after: dict[str, int]

    @property
    def stored(self) -> int:
        return self.after["reports"] - self.before["reports"]


class Receiver:
    """The running instance: its OTLP port, the fuzzed app's token, and a read-only look at its database."""

    def __init__(self, proc: Proc, port: int, database: Path, tokens: tuple[str, str, str]) -> None:
        self.proc = proc
        self.port = port
        self.database = database
        # the fuzzed app ([otlp] service_names = ["fuzzed"], allowed), an allowed app whose
        # manifest has no [otlp] table, and an app with one that the person blocked
        self.token, self.no_otlp_token, self.blocked_token = tokens
        # The (signal, decompressed body) of each request that stored reports, and the rejected
        # count it was answered with: the same bytes again are the same request.
        self.kept: dict[tuple[str, str], int] = {}

    def __repr__(self) -> str:
        return f"Receiver(port={self.port})"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def snapshot(self) -> dict[str, int]:
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        try:
            tables = ("reports", "dropped_fields", "ingest_keys", "batches", "apps", "receipts")
            return {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}
        finally:
            conn.close()

    def healthy(self) -> bool:
        with urllib.request.urlopen(self.proc.url + "/v1/health", timeout=10) as response:
            return bool(response.status == 200 and json.loads(response.read())["status"] == "ok")

    def send(self, path: str, body: bytes, headers: list[tuple[str, str]], *, length: bool = True) -> Sent:
        TALLY.add()
        before = self.snapshot()
        answer = exchange(self.port, http_request(path, body, headers, self.host, length=length))
        assert answer is not None, "the connection was closed without an answer"
        assert answer.status in ALLOWED, (answer.status, answer.body[:500])  # never a 5xx, nor any other
        _tally_event(f"answered {answer.status}")
        after = self.snapshot()
        assert self.healthy(), "the instance stopped answering GET /v1/health"
        return Sent(answer, before, after)


def _tally_event(text: str) -> None:
    """What the inputs reached, for ``--hypothesis-show-statistics``."""
    if currently_in_test_context():
        event(text)


def _register(proc: Proc, home: Path, app_id: str, otlp: bool, consent: str) -> str:
    extra: dict[str, Any] = {"otlp": {"service_names": [SERVICE]}} if otlp else {}
    path = home.parent / f"{app_id}.json"
    path.write_text(json.dumps(manifest_obj(app_id=app_id, fields=FUZZ_FIELDS, **extra)), encoding="utf-8")
    result = proc.cli("register", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert proc.cli("consent", app_id, consent).returncode == 0
    return str(json.loads(result.stdout)["token"])


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    home = tmp_path_factory.mktemp("fuzz-otlp") / "home"
    with Proc(home, extra_env={"TELEMETRY_TRAY_OTLP_PORT": "0"}) as proc:
        status = json.loads(proc.cli("status", "--json").stdout)
        assert status["otlp_problem"] is None, status
        served = Receiver(
            proc,
            int(status["otlp_url"].rsplit(":", 1)[1]),
            Path(status["database"]),
            (
                _register(proc, home, "org.example.fuzzed", True, "allow"),
                _register(proc, home, "org.example.plain", False, "allow"),
                _register(proc, home, "org.example.blocked", True, "block"),
            ),
        )
        yield served
        # Still serving after everything: a good request is stored.
        sent = served.send("/v1/logs", _good_logs("the last one").SerializeToString(), _headers(PROTOBUF, served.token))
        assert sent.answer.status == 200 and sent.stored == 1
        assert proc.stop() == 0, proc.output()
    TALLY.report()


def _headers(content_type: str | None, token: str | None, encoding: str | None = None) -> list[tuple[str, str]]:
    headers = []
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    if token is not None:
        headers.append(("Authorization", f"Bearer {token}"))
    if encoding is not None:
        headers.append(("Content-Encoding", encoding))
    return headers


# -- what an answer must be ----------------------------------------------------------------------

SIGNALS: dict[str, tuple[type[Message], type[Message], str, str]] = {
    # path: request, response, the rejected count's protobuf and JSON names
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse, "rejected_log_records", "rejectedLogRecords"),
    "/v1/metrics": (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
        "rejected_data_points",
        "rejectedDataPoints",
    ),
}


def assert_error(answer: Answer, statuses: set[int], code: str | None = None) -> dict[str, Any]:
    """A refusal: one of ``statuses``, with the API's JSON error body."""
    assert answer.status in statuses, (answer.status, answer.body[:300])
    assert answer.headers.get("content-type") == JSON_TYPE, answer
    body = answer.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    message = body.get("message")
    assert isinstance(message, str) and len(message) > 10, body
    assert len(message) <= 2000 and shown_safely(message, multiline=True), repr(message)[:300]
    if code is not None:
        assert body["error"] == code, body
    if answer.status == 401:
        assert answer.headers.get("www-authenticate", "").startswith("Bearer"), answer.headers
    return body


def partial_success(answer: Answer, path: str, json_request: bool) -> tuple[int, str]:
    """A 200's rejected count and message, read in the request's encoding."""
    assert answer.status == 200, (answer.status, answer.body[:300])
    _, response_type, proto_name, json_name = SIGNALS[path]
    if json_request:
        assert answer.headers.get("content-type") == JSON_TYPE, answer.headers
        obj = answer.json()
        assert set(obj) <= {"partialSuccess"}, obj
        partial = obj.get("partialSuccess", {})
        return int(partial.get(json_name, "0")), str(partial.get("errorMessage", ""))
    assert answer.headers.get("content-type") == PROTOBUF, answer.headers
    response: Any = response_type.FromString(answer.body)
    return int(getattr(response.partial_success, proto_name)), str(response.partial_success.error_message)


def assert_refused_whole(sent: Sent) -> None:
    assert sent.after == sent.before, f"a refused request changed the database: {sent.before} -> {sent.after}"


def checked_partial_success(answer: Answer, path: str, json_request: bool) -> tuple[int, str]:
    """A 200's rejected count and message; a message says it is ours, is bounded and hides nothing."""
    rejected, message = partial_success(answer, path, json_request)
    assert rejected >= 0
    if rejected:
        assert message.startswith("Telemetry Tray: "), message
    assert len(message) <= 2000 and shown_safely(message, multiline=True), repr(message)[:300]
    return rejected, message


def assert_answered(receiver: Receiver, sent: Sent, path: str, json_request: bool, body: bytes, held: int) -> None:
    """A 200 for a body holding ``held`` records or points: each is stored or counted as rejected
    (the same bytes again: nothing stored, answered as the first time)."""
    rejected, message = checked_partial_success(sent.answer, path, json_request)
    assert rejected <= held, (rejected, held, message)
    key = (path, hashlib.sha256(body).hexdigest())
    if key in receiver.kept:
        assert sent.stored == 0, "a resend of the same bytes was stored again"
        assert rejected == receiver.kept[key]
        return
    assert sent.stored == held - rejected, (held, rejected, sent.stored, message)
    _tally_event("some stored" if sent.stored else "all rejected" if rejected else "nothing held")
    if sent.stored:
        receiver.kept[key] = rejected
    else:
        assert_refused_whole(sent)  # nothing taken: nothing written, dropped names and keys included


def held_in(path: str, body: bytes) -> int | None:
    """How many log records or data points the reference parser finds in a protobuf body; None
    if it does not parse."""
    request_type = SIGNALS[path][0]
    try:
        parsed: Any = request_type.FromString(body)
    except (DecodeError, RecursionError, ValueError):
        return None
    return held_by(parsed)


def held_by(request: Any) -> int:
    if isinstance(request, ExportLogsServiceRequest):
        return sum(len(scope.log_records) for resource in request.resource_logs for scope in resource.scope_logs)
    held = 0
    for resource in request.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                which = metric.WhichOneof("data")
                held += len(getattr(metric, which).data_points) if which else 0
    return held


def foreign_in(request: Any) -> int:
    """How many records or points sit under a resource whose service.name is not the app's (or is
    absent, or given twice): each must be refused, and the message must say why."""
    logs = isinstance(request, ExportLogsServiceRequest)
    foreign = 0
    for resource in request.resource_logs if logs else request.resource_metrics:
        names = [a.value for a in resource.resource.attributes if a.key == "service.name"]
        if len(names) != 1 or names[0].WhichOneof("value") != "string_value" or names[0].string_value != SERVICE:
            single = ExportLogsServiceRequest() if logs else ExportMetricsServiceRequest()
            (single.resource_logs if logs else single.resource_metrics).append(resource)
            foreign += held_by(single)
    return foreign


def one_gzip_stream(data: bytes) -> bytes | None:
    """``data`` inflated if it is exactly one whole gzip stream (what the receiver takes), else None."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, MAX_BODY_BYTES + 1)
    except zlib.error:
        return None
    if not inflater.eof or inflater.unused_data or len(out) > MAX_BODY_BYTES:
        return None
    return out


def to_json(request: Message) -> bytes:
    """The OTLP/JSON mapping of a request (lowerCamelCase keys, enums as integers, 64-bit integers as strings)."""
    return json.dumps(MessageToDict(request, use_integers_for_enums=True)).encode()


# -- generated requests -------------------------------------------------------------------------

_texts = st.text(max_size=16)  # valid UTF-8 only: protobuf strings can hold nothing else
_keys = st.sampled_from(["event", "n", "user.path", "tags", "gpu", "service.version"]) | _texts
_times = st.sampled_from([0, 1_795_996_800_123_456_789]) | st.integers(0, 2**64 - 1)


def _any(kind: str, value: Any) -> AnyValue:
    made = AnyValue()
    if kind == "array":
        made.array_value.CopyFrom(ArrayValue(values=value))
    elif kind == "kvlist":
        made.kvlist_value.CopyFrom(KeyValueList(values=value))
    elif kind != "empty":
        setattr(made, f"{kind}_value", value)
    return made


_leaves = st.one_of(
    st.builds(_any, st.just("string"), st.sampled_from(["export", "crop", "", "1.2.3"]) | _texts),
    st.builds(_any, st.just("bool"), st.booleans()),
    st.builds(
        _any, st.just("int"), st.sampled_from([0, 1, -3, 2**63 - 1, -(2**63)]) | st.integers(-(2**63), 2**63 - 1)
    ),
    st.builds(_any, st.just("double"), st.floats()),
    st.builds(_any, st.just("bytes"), st.binary(max_size=8)),
    st.builds(_any, st.just("empty"), st.none()),
    st.builds(_any, st.just("array"), st.just([])),
)
# Nested at most max_leaves deep (each nested list holds at least one value): below MAX_ANY_DEPTH.
_any_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.builds(_any, st.just("array"), st.lists(inner, min_size=1, max_size=3)),
        st.builds(
            _any,
            st.just("kvlist"),
            st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), _keys, inner), min_size=1, max_size=3),
        ),
    ),
    max_leaves=6,
)
_attributes = st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), _keys, _any_values), max_size=5)
# Attributes a record of the app usually carries: the declared ones, of their types.
_declared = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["export", "crop"]) | _texts,
        "n": st.integers(-(2**63), 2**63 - 1) | st.sampled_from([0, 3]),
    },
).map(lambda d: [KeyValue(key=k, value=_any("string" if k == "event" else "int", v)) for k, v in d.items()])
_counts = st.sampled_from([1, 1, 1, 2, 0])  # resources, scopes: mostly one
_service_names = st.one_of(st.just(SERVICE), st.just(SERVICE), st.just(SERVICE), _texts, st.none())


@st.composite
def _resource_attributes(draw: st.DrawFn) -> list[KeyValue]:
    attributes = draw(_attributes)
    service = draw(_service_names)
    if service is not None:
        attributes.insert(
            draw(st.integers(0, len(attributes))), KeyValue(key="service.name", value=_any("string", service))
        )
    version = draw(st.none() | st.sampled_from(["1.2.3", "3", "x.y"]))
    if version is not None:
        attributes.append(KeyValue(key="service.version", value=_any("string", version)))
    return attributes


@st.composite
def _log_records(draw: st.DrawFn) -> LogRecord:
    tame = draw(st.booleans())  # half the records look like an SDK's, the others like anything
    record = LogRecord(
        time_unix_nano=draw(st.sampled_from([0, 1_795_996_800_123_456_789]) if tame else _times),
        observed_time_unix_nano=draw(_times),
        severity_number=draw(st.sampled_from([0, 9, 13, 17]) if tame else st.integers(0, 30)),  # type: ignore[arg-type]
        severity_text=draw(st.sampled_from(["", "INFO", "WARNING"]) | _texts),
        event_name=draw(
            st.sampled_from(["", "tiny.export"]) if tame else st.sampled_from(["", "tiny.export"]) | _texts
        ),
        attributes=draw(_declared) + draw(st.lists(st.builds(KeyValue, key=_keys, value=_leaves), max_size=2))
        if tame
        else draw(_attributes),
        trace_id=draw(st.sampled_from([b"", b"\x01" * 16])),
        span_id=draw(st.sampled_from([b"", b"\x02" * 8])),
        flags=draw(st.sampled_from([0, 1])),
    )
    body = draw(st.none() | st.builds(_any, st.just("string"), _texts) if tame else st.none() | _any_values)
    if body is not None:
        record.body.CopyFrom(body)
    return record


@st.composite
def logs_requests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    for _ in range(draw(_counts)):
        resource = request.resource_logs.add()
        resource.resource.attributes.extend(draw(_resource_attributes()))
        for _ in range(draw(_counts)):
            scope = resource.scope_logs.add()
            scope.scope.name = draw(st.sampled_from(["", "tiny.ui"]) | _texts)
            scope.scope.attributes.extend(draw(st.lists(st.builds(KeyValue, key=_keys, value=_leaves), max_size=1)))
            scope.log_records.extend(
                draw(st.lists(_log_records(), min_size=draw(st.sampled_from([0, 1, 1])), max_size=3))
            )
    return request


@st.composite
def _metrics(draw: st.DrawFn) -> Metric:
    metric = Metric(name=draw(st.sampled_from(["tiny.exports", ""]) | _texts), unit=draw(st.sampled_from(["", "1"])))
    kind = draw(st.sampled_from(["gauge", "sum", "sum", "histogram", "exponential_histogram", "summary", "none"]))
    if kind == "none":
        return metric
    data = getattr(metric, kind)
    data.SetInParent()
    if kind in ("sum", "histogram", "exponential_histogram"):
        data.aggregation_temporality = draw(st.integers(0, 3))
    if kind == "sum":
        data.is_monotonic = draw(st.booleans())
    for _ in range(draw(st.integers(0, 3))):
        point = data.data_points.add()
        point.attributes.extend(draw(_declared if draw(st.booleans()) else _attributes))
        point.time_unix_nano = draw(_times)
        point.flags = draw(st.sampled_from([0, 1]))
        if kind in ("gauge", "sum"):
            value = draw(st.none() | st.integers(-(2**63), 2**63 - 1) | st.floats())
            if isinstance(value, int):
                point.as_int = value
            elif isinstance(value, float):
                point.as_double = value
        else:
            point.count = draw(st.integers(0, 2**64 - 1))
            point.sum = draw(st.floats())
            if kind == "histogram":
                point.bucket_counts.extend(draw(st.lists(st.integers(0, 9), max_size=3)))
    return metric


@st.composite
def metrics_requests(draw: st.DrawFn) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    for _ in range(draw(_counts)):
        resource = request.resource_metrics.add()
        resource.resource.attributes.extend(draw(_resource_attributes()))
        for _ in range(draw(_counts)):
            scope = resource.scope_metrics.add()
            scope.scope.name = draw(st.sampled_from(["", "tiny.metrics"]) | _texts)
            scope.metrics.extend(draw(st.lists(_metrics(), max_size=3)))
    return request


def _good_logs(nonce: str = "") -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    resource.resource.attributes.append(KeyValue(key="service.name", value=_any("string", SERVICE)))
    record = resource.scope_logs.add().log_records.add()
    record.attributes.append(KeyValue(key="event", value=_any("string", "good")))
    record.attributes.append(KeyValue(key="nonce", value=_any("string", nonce)))
    return request


_requests = st.one_of(
    st.tuples(st.just("/v1/logs"), logs_requests()), st.tuples(st.just("/v1/metrics"), metrics_requests())
)
_PROTOBUF_TYPES = st.sampled_from([PROTOBUF, "application/x-protobuf; charset=binary", "Application/X-Protobuf"])
_JSON_TYPES = st.sampled_from([JSON_TYPE, "application/json; charset=utf-8", "APPLICATION/JSON"])


# -- the tests ----------------------------------------------------------------------------------


def damaged(body: bytes, how: str, where: float, byte: int) -> bytes:
    at = int(len(body) * where)
    if how == "cut":
        return body[:at]
    if how == "flip":
        return body[:at] + bytes([body[at] ^ (byte or 1)]) + body[at + 1 :] if body else body
    if how == "insert":
        return body[:at] + bytes([byte]) + body[at:]
    return body[:at] + body[at + 1 :]  # delete


_DAMAGE = st.tuples(
    st.sampled_from(["cut", "flip", "insert", "delete"]), st.floats(0, 1, exclude_max=True), st.integers(0, 255)
)


@settings(FUZZ, max_examples=300)  # the richest inputs: more of them
@given(
    signal_and_request=_requests,
    json_encoding=st.booleans(),
    damage=st.none() | _DAMAGE,
    gzipped=st.booleans(),
    data=st.data(),
)
def test_generated_requests_whole_cut_and_damaged(
    receiver: Receiver,
    signal_and_request: tuple[str, Message],
    json_encoding: bool,
    damage: tuple[str, float, int] | None,
    gzipped: bool,
    data: st.DataObject,
) -> None:
    """Valid requests of both signals in both encodings, whole or cut at a drawn point (or, in
    protobuf, with a byte changed, added or taken away), each held record stored or counted."""
    path, request = signal_and_request
    whole = to_json(request) if json_encoding else request.SerializeToString()
    if damage is not None and json_encoding:
        damage = ("cut", damage[1], 0)  # JSON is only cut: a changed byte may still be JSON, holding what?
    body = whole if damage is None else damaged(whole, *damage)
    content_type = data.draw(_JSON_TYPES if json_encoding else _PROTOBUF_TYPES)
    sent = receiver.send(
        path,
        gzip.compress(body) if gzipped else body,
        _headers(content_type, receiver.token, "gzip" if gzipped else None),
    )
    if damage is None:
        held: int | None = held_by(request)
        foreign = foreign_in(request)
        if foreign:
            rejected, message = partial_success(sent.answer, path, json_encoding)
            assert rejected >= foreign and "service.name" in message and "[otlp] service_names" in message, message
    elif json_encoding:
        held = None  # a JSON object cut short is never JSON
    else:
        held = held_in(path, body)  # the reference parser says whether it still parses, and what it holds
    if held is None:
        assert_error(sent.answer, {400}, "bad_otlp")
        assert_refused_whole(sent)
        return
    if damage is not None and sent.answer.status == 413:
        # A changed length may make a key longer than the receiver takes (or the like): refused whole.
        assert_error(sent.answer, {413}, "too_large")
        assert_refused_whole(sent)
        return
    assert_answered(receiver, sent, path, json_encoding, body, held)


def _replace_one(obj: Any, index: int, junk: object) -> Any:
    """``obj`` with its ``index``-th node (in document order, the root being 0) replaced by ``junk``."""
    count = [0]

    def walk(node: Any) -> Any:
        here = count[0]
        count[0] += 1
        if here == index:
            return junk
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return node

    return walk(obj)


def _nodes(obj: Any) -> int:
    if isinstance(obj, dict):
        return 1 + sum(_nodes(value) for value in obj.values())
    if isinstance(obj, list):
        return 1 + sum(_nodes(value) for value in obj)
    return 1


def _json_text(obj: object) -> bytes:
    try:
        return json.dumps(obj).encode()  # NaN and Infinity as the bare words, which JSON has not
    except (ValueError, TypeError):
        return b"{}"


@FUZZ
@given(signal_and_request=_requests, junk=junk_values, data=st.data())
@example(signal_and_request=("/v1/logs", _good_logs("x")), junk=float("nan"), data=None)
@example(signal_and_request=("/v1/logs", ExportLogsServiceRequest()), junk={"\x1b[2J": 1}, data=None)  # an unknown key
def test_json_with_one_node_replaced_by_junk(
    receiver: Receiver, signal_and_request: tuple[str, Message], junk: object, data: st.DataObject | None
) -> None:
    """One value anywhere in a valid OTLP/JSON request replaced by junk of any type: the wrong type
    where a list, an object, a string or a number belongs is refused whole, a wrong value where
    OTLP allows it is answered; never a 5xx."""
    path, request = signal_and_request
    obj = MessageToDict(request, use_integers_for_enums=True)
    index = data.draw(st.integers(0, _nodes(obj) - 1)) if data is not None else _nodes(obj) - 1
    body = _json_text(_replace_one(obj, index, junk))
    sent = receiver.send(path, body, _headers(JSON_TYPE, receiver.token))
    if sent.answer.status != 200:
        assert_error(sent.answer, {400, 413})
        assert_refused_whole(sent)
        return
    rejected, _ = checked_partial_success(sent.answer, path, True)
    if sent.stored == 0:
        assert_refused_whole(sent)
    _tally_event("some stored" if sent.stored else "all rejected" if rejected else "nothing held")


_WRONG_PATHS = ["/v1/traces", "/v1/log", "/v1/logs/", "/V1/LOGS", "/v1/reports", "/v1/health", "/", "/v1/metrics/x"]
_WRONG_TYPES = [None, "", "text/plain", "application/protobuf", "application/jsonx", "application/grpc",
                "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "json", "*/*"]  # fmt: skip
# None: no Authorization header; "no-otlp", "blocked": those apps' tokens
_WRONG_AUTH = [None, "Bearer not-the-token", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer", "Token x", "no-otlp"]
_WRONG_ENCODINGS = ["br", "deflate", "x-gzip", "gzip, identity", "compress", "zstd"]
_FAULT_VALUES: dict[str, list[str | None]] = {
    "path": list(_WRONG_PATHS),
    "type": list(_WRONG_TYPES),
    "auth": [*_WRONG_AUTH, "blocked"],
    "encoding": list(_WRONG_ENCODINGS),
}


@st.composite
def _faults(draw: st.DrawFn) -> dict[str, str | None]:
    """One fault, sometimes two (the answer is then either's)."""
    kinds = draw(
        st.lists(
            st.sampled_from(sorted(_FAULT_VALUES)), min_size=1, max_size=draw(st.sampled_from([1, 1, 2])), unique=True
        )
    )
    return {kind: draw(st.sampled_from(_FAULT_VALUES[kind])) for kind in kinds}


@FUZZ
@given(signal_and_request=_requests, json_encoding=st.booleans(), faults=_faults())
@example(signal_and_request=("/v1/logs", _good_logs()), json_encoding=False, faults={"path": "/v1/traces"})
@example(signal_and_request=("/v1/logs", _good_logs()), json_encoding=True, faults={"auth": "blocked"})
@example(signal_and_request=("/v1/logs", _good_logs()), json_encoding=False, faults={"auth": "no-otlp"})
def test_wrong_paths_types_tokens_and_encodings(
    receiver: Receiver, signal_and_request: tuple[str, Message], json_encoding: bool, faults: dict[str, str | None]
) -> None:
    """A valid body sent wrong: each fault has its status (several: one of theirs), and nothing is stored."""
    signal, request = signal_and_request
    body = to_json(request) if json_encoding else request.SerializeToString()
    headers: list[tuple[str, str]] = []
    expected: dict[int, set[str]] = {}  # status: its error codes
    if "path" in faults:
        expected[404] = {"traces_not_accepted" if faults["path"] == "/v1/traces" else "not_found"}
    if "type" in faults:
        expected[415] = {"unsupported_media_type"}
        if faults["type"] is not None:
            headers.append(("Content-Type", faults["type"]))
    else:
        headers.append(("Content-Type", JSON_TYPE if json_encoding else PROTOBUF))
    auth = faults.get("auth", "good")
    if auth in ("good", "blocked"):
        headers.append(("Authorization", f"Bearer {receiver.blocked_token if auth == 'blocked' else receiver.token}"))
    elif auth == "no-otlp":
        headers.append(("Authorization", f"Bearer {receiver.no_otlp_token}"))
        expected[403] = {"otlp_not_declared"}
    else:
        if auth is not None:
            headers.append(("Authorization", auth))
        expected[401] = {"unauthorized"}
    if "encoding" in faults:
        headers.append(("Content-Encoding", str(faults["encoding"])))
        expected.setdefault(415, set()).add("unsupported_media_type")
    sent = receiver.send(str(faults.get("path", signal)), body, headers)
    if not expected:  # only the blocked app's token: answered, every record refused, nothing stored
        rejected, message = checked_partial_success(sent.answer, signal, json_encoding)
        assert rejected == held_by(request), (rejected, message)
        assert not rejected or "blocked" in message, message
        assert_refused_whole(sent)
        return
    answer = assert_error(sent.answer, set(expected))
    assert answer["error"] in expected[sent.answer.status], (answer, expected)
    if answer["error"] == "traces_not_accepted":
        assert "OTEL_TRACES_EXPORTER=none" in answer["message"]
    assert_refused_whole(sent)


_JUNK = st.one_of(
    st.binary(max_size=512),
    st.sampled_from([b"", b"\x00", b"\xff" * 8, b"{}", b"[]", b"null", b'{"resourceLogs": 1}', b"\x0a\x00"]),
    st.builds(lambda b: b"\x0a" + bytes([len(b)]) + b, st.binary(max_size=100)),  # field 1, length-delimited, of junk
)


@FUZZ
@given(
    path=st.sampled_from(["/v1/logs", "/v1/metrics"]),
    json_encoding=st.booleans(),
    junk=_JUNK,
    wrapping=st.sampled_from(["none", "gzip", "gzip-cut", "gzip-magic", "gzip-twice"]),
)
@example(path="/v1/logs", json_encoding=False, junk=b"\xff\xff\xff\xff", wrapping="none")
@example(path="/v1/metrics", json_encoding=True, junk=b'{"resourceMetrics": [{"scopeMetrics": 7}]}', wrapping="gzip")
def test_junk_bytes_and_gzip_of_junk(
    receiver: Receiver, path: str, json_encoding: bool, junk: bytes, wrapping: str
) -> None:
    """Junk, gzipped or not (or a damaged gzip): 400 unless it happens to be a request, then nothing of it stored."""
    if wrapping == "none":
        sent_body = junk
    elif wrapping == "gzip":
        sent_body = gzip.compress(junk)
    elif wrapping == "gzip-cut":
        sent_body = gzip.compress(junk)[:-4]
    elif wrapping == "gzip-magic":
        sent_body = b"\x1f\x8b\x08" + junk
    else:
        sent_body = gzip.compress(junk) + gzip.compress(junk)
    sent = receiver.send(
        path,
        sent_body,
        _headers(JSON_TYPE if json_encoding else PROTOBUF, receiver.token, None if wrapping == "none" else "gzip"),
    )
    body = junk if wrapping == "none" else one_gzip_stream(sent_body)
    if body is None:
        assert_error(sent.answer, {400, 413}, None)
        assert_refused_whole(sent)
        return
    if json_encoding:
        if sent.answer.status != 200:
            assert_error(sent.answer, {400, 413})
            assert_refused_whole(sent)
            return
        checked_partial_success(sent.answer, path, True)
        assert_refused_whole(sent)  # no junk holds a record of the app's service
        return
    held = held_in(path, body)
    if held is None:
        assert_error(sent.answer, {400}, "bad_otlp")
        assert_refused_whole(sent)
        return
    assert_answered(receiver, sent, path, False, body, held)


# Hostile text where JSON can carry it and protobuf cannot: lone surrogates, controls, bidi marks.
_hostile = nasty_text | st.sampled_from(["\ud800", "x\udc00", "\x00", "\u202e", "\u2028", "a" * 256])


def _kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


_json_values = st.one_of(
    _hostile.map(lambda s: {"stringValue": s}),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: {"intValue": str(i)}),
    st.booleans().map(lambda b: {"boolValue": b}),
    st.lists(_hostile.map(lambda s: {"stringValue": s}), max_size=2).map(lambda vs: {"arrayValue": {"values": vs}}),
)
_json_attributes = st.dictionaries(_hostile | st.sampled_from(["event", "n"]), _json_values, max_size=4).map(
    lambda d: [_kv(k, v) for k, v in d.items()]
)


@st.composite
def hostile_json(draw: st.DrawFn) -> tuple[str, dict[str, Any], int]:
    """A well-formed OTLP/JSON request of the app's service with hostile text in every string."""
    resource = {"attributes": [_kv("service.name", {"stringValue": SERVICE}), *draw(_json_attributes)]}
    scope = {"name": draw(_hostile), "version": draw(_hostile)}
    if draw(st.booleans()):
        records = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"attributes": _json_attributes},
                    optional={
                        "eventName": _hostile,
                        "severityText": _hostile,
                        "severityNumber": st.integers(0, 24),
                        "body": _json_values,
                    },
                ),
                min_size=1,
                max_size=3,
            )
        )
        request = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"scope": scope, "logRecords": records}]}]}
        return "/v1/logs", request, len(records)
    points = draw(
        st.lists(
            st.fixed_dictionaries({"attributes": _json_attributes, "asInt": st.integers(0, 9).map(str)}),
            min_size=1,
            max_size=3,
        )
    )
    metric = {"name": draw(_hostile), "unit": draw(_hostile), "gauge": {"dataPoints": points}}
    request = {"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"scope": scope, "metrics": [metric]}]}]}
    return "/v1/metrics", request, len(points)


def _one_record(*attributes: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    resource = {"attributes": [_kv("service.name", {"stringValue": SERVICE})]}
    logs = {"resource": resource, "scopeLogs": [{"logRecords": [{"attributes": list(attributes)}]}]}
    return "/v1/logs", {"resourceLogs": [logs]}, 1


@FUZZ
@given(generated=hostile_json())
@example(generated=_one_record(_kv("event", {"stringValue": "x"}), _kv("\ud800", {"stringValue": "y"})))
@example(generated=_one_record(_kv("event", {"stringValue": "x\ud800"})))
@example(generated=_one_record(_kv("event", {"stringValue": "x"}), _kv("\x1b[2J\u202e", {"stringValue": "y"})))
def test_hostile_text_in_json(receiver: Receiver, generated: tuple[str, dict[str, Any], int]) -> None:
    """Controls, bidi marks and lone surrogates in keys, values, names: each record stored or
    rejected, and nothing of them in the answer unescaped."""
    path, request, held = generated
    body = json.dumps(request).encode()  # ASCII: a lone surrogate is written as its \\u escape
    sent = receiver.send(path, body, _headers(JSON_TYPE, receiver.token))
    assert_answered(receiver, sent, path, True, body, held)


def _nested_json(kind: str, depth: int) -> bytes:
    """One record of the app whose attribute ``nest`` holds arrays (or key-value lists) ``depth``
    deep; for ``list``, a flat ``nest`` and a key OTLP does not know holding lists ``depth`` deep."""
    if kind == "array":
        opening, closing = '{"arrayValue": {"values": [', "]}}"
    else:
        opening, closing = '{"kvlistValue": {"values": [{"key": "k", "value": ', "}]}}"
    value = (
        '{"stringValue": "deep"}' if kind == "list" else opening * depth + '{"stringValue": "deep"}' + closing * depth
    )
    unknown = ', "x": ' + "[" * depth + "1" + "]" * depth if kind == "list" else ""
    record = (
        '{"attributes": [{"key": "event", "value": {"stringValue": "deep"}}, {"key": "nest", "value": ' + value + "}]}"
    )
    service = '{"key": "service.name", "value": {"stringValue": "fuzzed"}}'
    return (
        '{"resourceLogs": [{"resource": {"attributes": [' + service + ']}, "scopeLogs": [{"logRecords": ['
        + record + "]}]}]" + unknown + "}"
    ).encode()  # fmt: skip


def _nested_protobuf(kind: str, depth: int) -> bytes:
    """The JSON above as protobuf, written by hand: the protobuf library will not build (or
    copy) a message nested deeper than it would parse."""

    def field(number: int, payload: bytes) -> bytes:
        size, length = len(payload), b""
        while True:
            length += bytes([(size & 0x7F) | (0x80 if size > 0x7F else 0)])
            size >>= 7
            if not size:
                break
        return bytes([number << 3 | 2]) + length + payload

    def key_value(key: bytes, any_value: bytes) -> bytes:
        return field(1, key) + field(2, any_value)

    # AnyValue { array_value { values: [value] } }, or AnyValue { kvlist_value { values: [k: value] } }
    value = field(1, b"deep")  # AnyValue { string_value }
    for _ in range(depth):
        value = field(5, field(1, value)) if kind == "array" else field(6, field(1, key_value(b"k", value)))
    record = field(6, key_value(b"event", field(1, b"deep"))) + field(6, key_value(b"nest", value))
    resource = field(1, field(1, key_value(b"service.name", field(1, SERVICE.encode()))))
    return field(1, resource + field(2, field(2, record)))  # resource_logs { resource, scope_logs { log_records } }


@FUZZ
@given(
    kind=st.sampled_from(["array", "kvlist", "list"]),
    depth=st.integers(0, MAX_ANY_DEPTH + 4) | st.sampled_from([40, 99, 100, 101, 500, 5000, 100_000]),
    json_encoding=st.booleans(),
)
@example(kind="list", depth=100_000, json_encoding=True)
@example(kind="array", depth=5000, json_encoding=True)
@example(kind="array", depth=5000, json_encoding=False)
def test_deep_nesting(receiver: Receiver, kind: str, depth: int, json_encoding: bool) -> None:
    """Arrays and key-value lists inside one another in an attribute: up to MAX_ANY_DEPTH the
    attribute is refused alone and the record kept; deeper, the request is refused whole. JSON
    lists nested in a key OTLP does not know: ignored, unless too deep to parse (400)."""
    if not json_encoding:
        kind = "array" if kind == "list" else kind
    body = _nested_json(kind, depth) if json_encoding else _nested_protobuf(kind, min(depth, 5000))
    sent = receiver.send("/v1/logs", body, _headers(JSON_TYPE if json_encoding else PROTOBUF, receiver.token))
    if depth <= (500 if kind == "list" else MAX_ANY_DEPTH):
        assert_answered(receiver, sent, "/v1/logs", json_encoding, body, 1)
        assert sent.stored == 1 or ("/v1/logs", hashlib.sha256(body).hexdigest()) in receiver.kept
    else:
        assert_error(sent.answer, {400} if kind == "list" else {400, 413})
        assert_refused_whole(sent)


def _json_logs(records: list[str], service: str = SERVICE) -> bytes:
    return (
        '{"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "'
        + service + '"}}]}, "scopeLogs": [{"logRecords": [' + ",".join(records) + "]}]}]}"
    ).encode()  # fmt: skip


_EVENT = '{"attributes": [{"key": "event", "value": {"stringValue": "big"}}]}'
_BIG_STRING = '{"attributes": [{"key": "event", "value": {"stringValue": "' + "x" * MAX_BODY_BYTES + '"}}]}'


def _many_protobuf_records(count: int) -> bytes:
    request = _good_logs()
    records = request.resource_logs[0].scope_logs[0].log_records
    for _ in range(count - 1):
        records.add().attributes.append(KeyValue(key="event", value=_any("string", "big")))
    return bytes(request.SerializeToString())


def _many_points(count: int) -> bytes:
    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    resource.resource.attributes.append(KeyValue(key="service.name", value=_any("string", SERVICE)))
    gauge = resource.scope_metrics.add().metrics.add(name="tiny.level").gauge
    for i in range(count):
        gauge.data_points.add(as_int=i)
    return bytes(request.SerializeToString())


OVER: list[tuple[str, str, Callable[[], bytes], str, str | None]] = [
    # what, path, body, content type, content encoding
    ("JSON over 1 MiB", "/v1/logs", lambda: _json_logs([_BIG_STRING]), JSON_TYPE, None),
    ("JSON padded past 1 MiB", "/v1/logs", lambda: _json_logs([_EVENT]) + b" " * MAX_BODY_BYTES, JSON_TYPE, None),
    ("protobuf over 1 MiB", "/v1/logs", lambda: _many_protobuf_records(80_000), PROTOBUF, None),
    ("gzip inflating past 1 MiB", "/v1/logs", lambda: gzip.compress(_json_logs([_BIG_STRING])), JSON_TYPE, "gzip"),
    ("JSON of 10,001 records", "/v1/logs", lambda: _json_logs([_EVENT] * (MAX_RECORDS + 1)), JSON_TYPE, None),
    ("protobuf of 10,001 records", "/v1/logs", lambda: _many_protobuf_records(MAX_RECORDS + 1), PROTOBUF, None),
    ("10,001 data points", "/v1/metrics", lambda: _many_points(MAX_RECORDS + 1), PROTOBUF, None),
]


@pytest.mark.parametrize(("what", "path", "body", "content_type", "encoding"), OVER, ids=[o[0] for o in OVER])
def test_over_the_limits_is_413_and_nothing_is_stored(
    receiver: Receiver, what: str, path: str, body: Callable[[], bytes], content_type: str, encoding: str | None
) -> None:
    sent = receiver.send(path, body(), _headers(content_type, receiver.token, encoding))
    assert_error(sent.answer, {413}, "too_large")
    assert_refused_whole(sent)


def test_a_body_of_50_mb_announced_is_413_before_it_is_read(receiver: Receiver) -> None:
    headers = [*_headers(PROTOBUF, receiver.token), ("Content-Length", "50000000")]
    sent = receiver.send("/v1/logs", b"", headers, length=False)
    assert_error(sent.answer, {413}, "too_large")
    assert_refused_whole(sent)


def test_the_limits_themselves_are_taken(receiver: Receiver) -> None:
    """Exactly MAX_RECORDS records, and a body just under 1 MiB, are stored: the limits refuse only what is over."""
    sent = receiver.send("/v1/logs", _many_protobuf_records(MAX_RECORDS), _headers(PROTOBUF, receiver.token))
    assert_answered(receiver, sent, "/v1/logs", False, _many_protobuf_records(MAX_RECORDS), MAX_RECORDS)
    assert sent.stored == MAX_RECORDS
    body = _json_logs([_EVENT, _EVENT])
    body += b" " * (MAX_BODY_BYTES - len(body))
    sent = receiver.send("/v1/logs", body, _headers(JSON_TYPE, receiver.token))
    assert_answered(receiver, sent, "/v1/logs", True, body, 2)
    assert sent.stored == 2
