"""OTLP/HTTP in and out: request bodies to neutral records, records to reports, reports to OTLP/JSON.

Pure: no I/O and no threads. The protobuf decoder (``opentelemetry-proto``) is imported at the
first ``application/x-protobuf`` body, so importing this module loads no protobuf. Gzip is the
caller's job: the bodies here are already decompressed.

**In.** :func:`decode_logs` and :func:`decode_metrics` take the body of ``POST /v1/logs`` or
``POST /v1/metrics`` and its ``Content-Type``, and give typed records: one
:class:`OtlpLogRecord` per log record, one :class:`OtlpDataPoint` per metric data point, each
with the attributes of its resource. JSON is read by the OTLP JSON mapping, not by a generic
protobuf JSON parser: lowerCamelCase keys only, enums as integers, 64-bit integers as decimal
strings or as numbers, doubles as numbers or ``"NaN"``/``"Infinity"`` strings, unknown keys
ignored, ``null`` as absent. A body that is not such a request, or is over a limit, raises
:class:`~tray_app.core.errors.MalformedError` or :class:`~tray_app.core.errors.TooLargeError`
(naming where, and what to do); nothing else escapes.

What a value becomes (the same for both encodings):

* An attribute (of a record, a data point or a resource) is kept when it is a string, a
  boolean, an int64 or a finite double. An array, a key-value list, bytes, a non-finite double,
  an empty value or a key given twice is not flat data a person can review field by field: it
  is **refused per attribute**, the request goes on, and its name (``attr:<key>`` or
  ``resource:<key>``) is counted among the record's dropped names.
* A log record's **body** is kept as its scalar when it is one. An array or key-value list body
  becomes its **JSON text** (canonical: sorted keys, no spaces; a key-value list as an object,
  an array as a list), so a ``body`` source of type ``string`` shows the person exactly what the
  app sent. A body holding bytes or a non-finite double is refused (dropped name ``body``).
* Trace and span ids, trace flags, scope attributes, exemplars and histogram buckets are never
  carried: each present one is a dropped name (``trace_id``, ``span_id``, ``flags``,
  ``scope:<key>``, ``exemplars``, ``buckets``) and its value is forgotten at once.

**Metrics.** Each data point is decoded with its kind, temporality and monotonicity;
:func:`point_refusal` says which become reports. Sum and Gauge points do, one report each.
Histogram, ExponentialHistogram and Summary points are refused (a report holds one value; their
buckets are arrays), and so is a *cumulative monotonic* Sum: each export repeats a growing total,
and keeping per-series state across requests and restarts is not a rule of this module; the
refusal says to set ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta``. A cumulative
*non-monotonic* Sum (an UpDownCounter, which stays cumulative under the delta preference) is a
level, read like a gauge, and kept.

**Mapping.** :func:`to_report` makes one report of a record through the manifest's per-field
``source`` (DESIGN.md: ``attr:<key>`` (the default, ``attr:<name>``), ``body``, ``event_name``,
``severity``, ``time``, ``resource:<key>``, ``metric``, ``value``), and names what it dropped:
every attribute and resource attribute no field takes, and a body, event name or severity that
no field takes.

**Out** (``format = "otlp"``). :func:`encode_logs` writes the records of an approved batch as an
``ExportLogsServiceRequest``, :func:`encode_metrics` its aggregates as an
``ExportMetricsServiceRequest`` of delta monotonic Sums, both as canonical JSON bytes
(:func:`~tray_app.core.rules.payload.canonical_bytes`), so the preview, the digest and every
retry are the same bytes. The batch id is the resource attribute ``telemetry_tray.batch_id``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NoReturn, TypeVar

from ..errors import MalformedError, TooLargeError
from .canonical_json import canonical_json
from .clock import from_iso, to_iso
from .intake import MAX_BODY_BYTES, unique_keys
from .payload import canonical_bytes
from .reports import JSONScalar

# Limits: far above what an honest SDK sends (Python's batch is at most 512 records, OTel's
# default attribute count limit is 128), well below what would hurt us.
MAX_RECORDS = 10_000  # log records, or data points, in one request
MAX_ATTRIBUTES = 128  # in one attribute list (a record's, a point's, a resource's, a scope's)
MAX_KEY_LENGTH = 256  # characters of an attribute key
MAX_ANY_DEPTH = 8  # arrays and key-value lists inside one another, in one value
MAX_ANY_ITEMS = 1_000  # members of all the arrays and key-value lists of one value

SourceKind = Literal["attr", "resource", "body", "event_name", "severity", "time", "metric", "value"]
SOURCE_KINDS: tuple[SourceKind, ...] = ("attr", "resource", "body", "event_name", "severity", "time", "metric", "value")
_KEYED: frozenset[str] = frozenset({"attr", "resource"})

MetricKind = Literal["gauge", "sum", "histogram", "exponential_histogram", "summary"]
TEMPORALITY_UNSPECIFIED = 0
TEMPORALITY_DELTA = 1
TEMPORALITY_CUMULATIVE = 2

# severity_number ranges (logs.proto): 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL
SEVERITIES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")

_NO_RECORDED_VALUE = 1  # DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_INT64 = 2**63
_UINT64 = 2**64
_DIGITS = re.compile(r"-?[0-9]{1,20}\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

JSON_TYPE = "application/json"
PROTOBUF_TYPE = "application/x-protobuf"


# ---------------------------------------------------------------------------------------------
# The neutral structure


@dataclass(frozen=True, slots=True)
class OtlpLogRecord:
    """One log record as the tray sees it. ``resource`` is shared by the records of one
    resource: read it, never change it. ``dropped`` names what the decoder did not carry."""

    resource: Mapping[str, JSONScalar]
    scope_name: str
    scope_version: str
    time_unix_nano: int  # 0: not set
    observed_time_unix_nano: int  # 0: not set
    severity_number: int  # 0: unspecified
    severity_text: str
    body: JSONScalar | None  # a scalar, or the JSON text of an array or key-value list body
    event_name: str
    attributes: Mapping[str, JSONScalar]
    dropped: tuple[str, ...]

    @property
    def time(self) -> int:
        """``time_unix_nano`` if set, else ``observed_time_unix_nano`` (logs.proto), 0 if neither."""
        return self.time_unix_nano or self.observed_time_unix_nano

    @property
    def service_name(self) -> str | None:
        name = self.resource.get("service.name")
        return name if isinstance(name, str) else None


@dataclass(frozen=True, slots=True)
class OtlpDataPoint:
    """One metric data point. ``value`` is the Sum or Gauge point's ``as_int``/``as_double``
    (None when there is none, or it is not finite); histograms and summaries carry
    ``count``/``sum``/``min``/``max`` and no value."""

    resource: Mapping[str, JSONScalar]
    scope_name: str
    scope_version: str
    metric: str
    unit: str
    kind: MetricKind
    temporality: int  # TEMPORALITY_*; 0 for gauges and summaries
    monotonic: bool
    value: int | float | None
    count: int | None
    sum: float | None
    min: float | None
    max: float | None
    start_time_unix_nano: int
    time_unix_nano: int
    attributes: Mapping[str, JSONScalar]
    dropped: tuple[str, ...]

    @property
    def time(self) -> int:
        return self.time_unix_nano

    @property
    def service_name(self) -> str | None:
        name = self.resource.get("service.name")
        return name if isinstance(name, str) else None


@dataclass(frozen=True, slots=True)
class OtlpLogs:
    """A decoded ``ExportLogsServiceRequest``. ``unknown_keys``: the request object's keys
    that OTLP/JSON does not know and that were ignored (e.g. ``resource_logs``, snake_case),
    so an answer can warn that a body with keys held no records."""

    records: tuple[OtlpLogRecord, ...]
    unknown_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OtlpMetrics:
    """A decoded ``ExportMetricsServiceRequest``; see :class:`OtlpLogs`."""

    points: tuple[OtlpDataPoint, ...]
    unknown_keys: tuple[str, ...] = ()


def media_type(content_type: str) -> Literal["json", "protobuf"] | None:
    """Which OTLP/HTTP encoding a ``Content-Type`` names (parameters ignored), or None: the
    endpoint answers 415 for None before decoding anything."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == JSON_TYPE:
        return "json"
    if kind == PROTOBUF_TYPE:
        return "protobuf"
    return None


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_logs(body: bytes, content_type: str, *, max_bytes: int = MAX_BODY_BYTES) -> OtlpLogs:
    """The log records of an OTLP/HTTP ``ExportLogsServiceRequest`` body (already gunzipped)."""
    records, unknown_keys = _decode(body, content_type, max_bytes, _LOGS, lambda walker, request: walker.logs(request))
    return OtlpLogs(tuple(records), unknown_keys)


def decode_metrics(body: bytes, content_type: str, *, max_bytes: int = MAX_BODY_BYTES) -> OtlpMetrics:
    """The data points of an OTLP/HTTP ``ExportMetricsServiceRequest`` body (already gunzipped)."""
    points, unknown_keys = _decode(body, content_type, max_bytes, _METRICS, lambda walker, req: walker.metrics(req))
    return OtlpMetrics(tuple(points), unknown_keys)


_T = TypeVar("_T")


def _decode(
    body: bytes, content_type: str, max_bytes: int, signal: _Signal, walk: Callable[[_Walker, Any], list[_T]]
) -> tuple[list[_T], tuple[str, ...]]:
    """What ``walk`` finds in the request, and the unknown keys of a JSON request object."""
    kind = _check_body(body, content_type, max_bytes, signal.name)
    if kind == "json":
        obj = _load_json(body)
        return _guard(lambda: walk(_JsonWalker(), obj), signal.name, "JSON"), _unknown(obj, (signal.resources,))
    request = _parse_protobuf(body, signal.name)
    return _guard(lambda: walk(_ProtoWalker(), request), signal.name, "protobuf"), ()


class _Bad(Exception):
    """A problem at a place in the request; the walkers add the place on the way up."""

    def __init__(self, problem: str, *, too_large: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.too_large = too_large
        self.path: list[str] = []

    def at(self, step: str) -> _Bad:
        self.path.append(step)
        return self


def _guard(walk: Callable[[], _T], signal: str, encoding: str) -> _T:
    try:
        result = walk()
    except _Bad as bad:
        where = ".".join(reversed(bad.path)) or "the request"
        if bad.too_large:
            raise TooLargeError(f"OTLP {signal} request, at {where}: {bad.problem}.") from None
        raise MalformedError(
            f"The body is not an OTLP/{encoding} Export{signal.capitalize()}ServiceRequest: at {where}, "
            f"{bad.problem}. Send the OpenTelemetry SDK's own OTLP/HTTP export."
        ) from None
    except RecursionError:
        raise MalformedError(f"The OTLP {signal} request is nested too deeply.") from None
    return result


def _check_body(body: bytes, content_type: str, max_bytes: int, signal: str) -> str:
    if len(body) > max_bytes:
        raise TooLargeError(
            f"The OTLP {signal} body is {len(body)} bytes; at most {max_bytes} are accepted. "
            "Export smaller batches (OTEL_BLRP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE)."
        )
    kind = media_type(content_type)
    if kind is None:
        raise MalformedError(
            f"Content-Type {content_type[:80]!r} is not OTLP/HTTP: send {PROTOBUF_TYPE} or {JSON_TYPE}."
        )
    return kind


def _load_json(body: bytes) -> object:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError(f"The OTLP/JSON body is not UTF-8 (bad byte at position {exc.start}).") from None
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise MalformedError(
            f"The OTLP/JSON body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    except RecursionError:
        raise MalformedError("The OTLP/JSON body is nested too deeply.") from None
    except MalformedError:
        raise
    except ValueError as exc:  # e.g. an integer too long to convert
        raise MalformedError(f"The OTLP/JSON body is not valid JSON: {exc}.") from None


def _no_constant(name: str) -> NoReturn:
    raise MalformedError(f'{name} is not valid JSON; OTLP/JSON writes a non-finite double as the string "{name}".')


def _unknown(obj: object, known: Sequence[str]) -> tuple[str, ...]:
    if not isinstance(obj, dict):
        return ()
    return tuple(sorted(str(key)[:64] for key in obj if key not in known))[:20]


def _parse_protobuf(body: bytes, signal: str) -> Any:
    from google.protobuf.message import DecodeError

    if signal == "logs":
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

        message: Any = ExportLogsServiceRequest
    else:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        message = ExportMetricsServiceRequest
    try:
        return message.FromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        problem = str(exc)[:120] or "it does not parse"
        raise MalformedError(
            f"The body is not an OTLP/protobuf Export{signal.capitalize()}ServiceRequest ({problem}). "
            "Send the OpenTelemetry SDK's own OTLP/HTTP export, or set Content-Type: application/json for JSON."
        ) from None


def _nanos_to_iso(nanos: int) -> str:
    return to_iso(_EPOCH + timedelta(microseconds=nanos // 1000))


def _iso_to_nanos(text: str) -> int:
    moment = from_iso(text)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


class _Counter:
    """How many records (or points) a request held so far: one limit over all resources."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def add(self, count: int, what: str) -> None:
        self.n += count
        if self.n > MAX_RECORDS:
            raise _Bad(f"more than {MAX_RECORDS} {what} in one request; export smaller batches", too_large=True)


def _check_key(key: str) -> None:
    if len(key) > MAX_KEY_LENGTH:
        raise _Bad(f"an attribute key of {len(key)} characters; at most {MAX_KEY_LENGTH}", too_large=True)


class _Unsupported(Exception):
    """A value that is not flat data (array, kvlist, bytes, non-finite double, empty)."""


# --- JSON --------------------------------------------------------------------------------------


def _obj(value: object, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Bad(f"{what} must be an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(f"{what} must be a list")
    return value


def _str(value: object, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Bad(f"{what} must be a string")
    return value


def _bool(value: object, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _Bad(f"{what} must be true or false")
    return value


def _int(value: object, what: str, low: int, high: int) -> int:
    """An integer field: a JSON number or a decimal string (OTLP/JSON writes 64-bit ones as strings)."""
    if value is None:
        return 0
    number: int
    if isinstance(value, bool):
        raise _Bad(f"{what} must be an integer, not {str(value).lower()}")
    if isinstance(value, int):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (isinstance(value, str) and _DIGITS.match(value)):
        number = int(value)
    else:
        raise _Bad(f"{what} must be an integer (a number or a decimal string), not {_show(value)}")
    if not low <= number < high:
        raise _Bad(f"{what} {number} is out of range")
    return number


def _enum(value: object, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31:
        return value
    raise _Bad(f"{what} must be an integer (OTLP/JSON writes enums as numbers, never names), not {_show(value)}")


def _double(value: object, what: str) -> float:
    """A double field: a JSON number, or a string ("NaN", "Infinity", "-Infinity", or a number)."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        raise _Bad(f"{what} must be a number")
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            raise _Bad(f"{what} is out of range") from None
    if isinstance(value, str) and len(value) <= 64:
        try:
            return float(value) if value.strip() == value and "_" not in value else _not_double(what, value)
        except ValueError:
            pass
    raise _Bad(f"{what} must be a number, not {_show(value)}")


def _not_double(what: str, value: str) -> NoReturn:
    raise _Bad(f"{what} must be a number, not {_show(value)}")


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value[:40])
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)[:40]


@dataclass(frozen=True, slots=True)
class _Signal:
    """Where a signal's records sit in a request: the OTLP/JSON names (which the error paths
    use for both encodings) and the protobuf fields."""

    name: str  # "logs" or "metrics", as messages name the signal
    resources: str
    scopes: str
    items: str
    proto_resources: str
    proto_scopes: str
    proto_items: str
    counted: str | None  # what the request's limit counts of the items (None: counted below them)


_LOGS = _Signal(
    "logs", "resourceLogs", "scopeLogs", "logRecords", "resource_logs", "scope_logs", "log_records", "log records"
)
_METRICS = _Signal(
    "metrics", "resourceMetrics", "scopeMetrics", "metrics", "resource_metrics", "scope_metrics", "metrics", None
)


@dataclass(frozen=True, slots=True)
class _Above:
    """What a record or data point takes from its resource and its scope."""

    resource: Mapping[str, JSONScalar]
    scope_name: str
    scope_version: str
    dropped: tuple[str, ...]


class _Walker:
    """The walk both encodings share: resources, their scopes and their records; attributes;
    values, flat or nested. A subclass says how a request of its encoding is read."""

    def __init__(self) -> None:
        self.count = _Counter()
        self.items = 0

    # -- how the encoding is read -------------------------------------------------------

    def _request(self, request: Any) -> Any:
        """The request, checked."""
        raise NotImplementedError

    def _open(self, value: Any, what: str) -> Any:
        """A message (``what``: how an error names it)."""
        raise NotImplementedError

    def _field(self, message: Any, key: str) -> Any:
        """A message field (``resource``, ``scope``), or None."""
        raise NotImplementedError

    def _children(self, message: Any, key: str, proto_key: str) -> Sequence[Any]:
        """A repeated field, by its OTLP/JSON and its protobuf name."""
        raise NotImplementedError

    def _text(self, message: Any, key: str) -> str:
        raise NotImplementedError

    def _pair(self, item: Any, what: str) -> tuple[str, Any]:
        """A key-value's key and value."""
        raise NotImplementedError

    def _one_of(self, value: Any) -> tuple[str | None, Any]:
        """Which member of an AnyValue is set (None: none) and what to read it from."""
        raise NotImplementedError

    def _leaf(self, key: str, item: Any) -> JSONScalar | None:
        """A scalar AnyValue member, or None for bytes, non-finite doubles and profile string indexes."""
        raise NotImplementedError

    def _members(self, key: str, item: Any) -> tuple[bool, Sequence[Any]]:
        """Whether a nested value is a key-value list, and its members."""
        raise NotImplementedError

    def _body_of(self, record: Any) -> Any:
        """A log record's body, or None when it has none."""
        raise NotImplementedError

    def _ids(self, record: Any) -> tuple[bool, bool, bool]:
        """Whether a log record carries a trace id, a span id and trace flags (never kept)."""
        raise NotImplementedError

    def _record_fields(self, record: Any) -> dict[str, Any]:
        """A log record's own fields: times, severity, event name."""
        raise NotImplementedError

    def _metric(self, value: Any, above: _Above, points: list[OtlpDataPoint]) -> None:
        raise NotImplementedError

    # -- the walk -------------------------------------------------------------------------

    def logs(self, request: Any) -> list[OtlpLogRecord]:
        records: list[OtlpLogRecord] = []
        self._walk(request, _LOGS, lambda value, above: records.append(self._record(value, above)))
        return records

    def metrics(self, request: Any) -> list[OtlpDataPoint]:
        points: list[OtlpDataPoint] = []
        self._walk(request, _METRICS, lambda value, above: self._metric(value, above, points))
        return points

    def _walk(self, request: Any, signal: _Signal, visit: Callable[[Any, _Above], None]) -> None:
        message = self._request(request)
        for i, value in enumerate(self._children(message, signal.resources, signal.proto_resources)):
            try:
                self._resource_items(value, signal, visit)
            except _Bad as bad:
                raise bad.at(f"{signal.resources}[{i}]") from None

    def _resource_items(self, value: Any, signal: _Signal, visit: Callable[[Any, _Above], None]) -> None:
        container = self._open(value, f"each {signal.resources}")
        resource, resource_dropped = self._resource(self._field(container, "resource"))
        for j, scope_value in enumerate(self._children(container, signal.scopes, signal.proto_scopes)):
            try:
                scoped = self._open(scope_value, f"each {signal.scopes}")
                scope_name, scope_version, scope_dropped = self._scope(self._field(scoped, "scope"))
                items = self._children(scoped, signal.items, signal.proto_items)
                if signal.counted is not None:
                    self.count.add(len(items), signal.counted)
                above = _Above(resource, scope_name, scope_version, resource_dropped + scope_dropped)
                for k, item in enumerate(items):
                    try:
                        visit(item, above)
                    except _Bad as bad:
                        raise bad.at(f"{signal.items}[{k}]") from None
            except _Bad as bad:
                raise bad.at(f"{signal.scopes}[{j}]") from None

    def _record(self, value: Any, above: _Above) -> OtlpLogRecord:
        record = self._open(value, "each log record")
        dropped = list(above.dropped)
        attributes, unsupported = self._attributes(record)
        dropped += [f"attr:{key}" for key in unsupported]
        body: JSONScalar | None = None
        body_value = self._body_of(record)
        if body_value is not None:
            try:
                body = self._body(body_value)
            except _Unsupported:
                dropped.append("body")
            except _Bad as bad:
                raise bad.at("body") from None
        dropped += [name for name, carried in zip(_IDS, self._ids(record), strict=True) if carried]
        return _decoded(OtlpLogRecord, above, attributes, dropped, body=body, **self._record_fields(record))

    def _resource(self, value: Any) -> tuple[dict[str, JSONScalar], tuple[str, ...]]:
        try:
            attributes, unsupported = self._attributes(self._open(value, "resource"))
        except _Bad as bad:
            raise bad.at("resource") from None
        return attributes, tuple(f"resource:{key}" for key in unsupported)

    def _scope(self, value: Any) -> tuple[str, str, tuple[str, ...]]:
        try:
            scope = self._open(value, "scope")
            name = self._text(scope, "name")
            version = self._text(scope, "version")
            attributes, unsupported = self._attributes(scope)
        except _Bad as bad:
            raise bad.at("scope") from None
        return name, version, tuple(f"scope:{key}" for key in [*attributes, *unsupported])

    def _attributes(self, message: Any) -> tuple[dict[str, JSONScalar], list[str]]:
        """A message's flat attributes, and the keys refused (not flat, or given twice)."""
        items = self._children(message, "attributes", "attributes")
        if len(items) > MAX_ATTRIBUTES:
            raise _Bad(f"{len(items)} attributes; at most {MAX_ATTRIBUTES}", too_large=True).at("attributes")
        attributes: dict[str, JSONScalar] = {}
        unsupported: list[str] = []
        for i, item in enumerate(items):
            try:
                key, value = self._pair(item, "each attribute")
                _check_key(key)
                try:
                    scalar: JSONScalar | None = self._scalar(value)
                except _Unsupported:
                    scalar = None
            except _Bad as bad:
                raise bad.at(f"attributes[{i}]") from None
            if key in attributes or key in unsupported:
                attributes.pop(key, None)  # which of two values counts is ambiguous
                if key not in unsupported:
                    unsupported.append(key)
            elif scalar is None:
                unsupported.append(key)
            else:
                attributes[key] = scalar
        return attributes, unsupported

    def _scalar(self, value: Any) -> JSONScalar:
        """A flat value, or _Unsupported for arrays, kvlists, bytes, non-finite doubles and empty values.
        The members of an array or kvlist are still checked (a malformed body is refused)."""
        return self._value(value, nested=False)

    def _body(self, value: Any) -> JSONScalar:
        """A flat value, or an array or kvlist as its canonical JSON text."""
        return self._value(value, nested=True)

    def _value(self, value: Any, *, nested: bool) -> JSONScalar:
        self.items = 0
        key, item = self._one_of(value)
        if key is None:
            raise _Unsupported
        if key in _NESTED:
            plain = self._plain(key, item, 1)
            if not nested or plain is _UNSUPPORTED:
                raise _Unsupported
            return canonical_json(plain)
        scalar = self._leaf(key, item)
        if scalar is None:
            raise _Unsupported
        return scalar

    def _plain(self, key: str, item: Any, depth: int) -> object:
        """An array or kvlist as plain JSON (a list or an object), or _UNSUPPORTED if it holds bytes
        or a non-finite double or an empty value anywhere."""
        if depth > MAX_ANY_DEPTH:
            raise _Bad(f"arrays and key-value lists nested more than {MAX_ANY_DEPTH} deep", too_large=True)
        is_kvlist, members = self._members(key, item)
        self.items += len(members)
        if self.items > MAX_ANY_ITEMS:
            raise _Bad(f"more than {MAX_ANY_ITEMS} members in one value's arrays and key-value lists", too_large=True)
        step = "kvlistValue" if is_kvlist else "arrayValue"
        unsupported = False
        plain_list: list[object] = []
        plain_dict: dict[str, object] = {}
        for i, member in enumerate(members):
            try:
                if is_kvlist:
                    member_key, member_value = self._pair(member, "each key-value")
                    _check_key(member_key)
                else:
                    member_key, member_value = "", member
                one, one_item = self._one_of(member_value)
                if one is None:
                    result: object = _UNSUPPORTED
                elif one in _NESTED:
                    result = self._plain(one, one_item, depth + 1)
                else:
                    leaf = self._leaf(one, one_item)
                    result = _UNSUPPORTED if leaf is None else leaf
            except _Bad as bad:
                raise bad.at(f"{step}.values[{i}]") from None
            if result is _UNSUPPORTED:
                unsupported = True
            elif is_kvlist:
                if member_key in plain_dict:
                    unsupported = True  # a key given twice: which counts is ambiguous
                plain_dict[member_key] = result
            else:
                plain_list.append(result)
        if unsupported:
            return _UNSUPPORTED
        return plain_dict if is_kvlist else plain_list


_Decoded = TypeVar("_Decoded", OtlpLogRecord, OtlpDataPoint)


def _decoded(
    made: type[_Decoded], above: _Above, attributes: Mapping[str, JSONScalar], dropped: list[str], **fields: Any
) -> _Decoded:
    """A log record or data point: what it takes from above, its attributes, what it dropped,
    and its own ``fields`` (both walkers make them here)."""
    return made(
        resource=above.resource,
        scope_name=above.scope_name,
        scope_version=above.scope_version,
        attributes=attributes,
        dropped=tuple(dropped),
        **fields,
    )


class _JsonWalker(_Walker):
    def _request(self, request: Any) -> Any:
        checked = _obj(request, "the request")
        if checked is None:
            raise _Bad("the request must be an object")
        return checked

    def _open(self, value: Any, what: str) -> Any:
        return _obj(value, what) or {}

    def _field(self, message: Any, key: str) -> Any:
        return message.get(key)

    def _children(self, message: Any, key: str, proto_key: str) -> Sequence[Any]:
        return _list(message.get(key), key)

    def _text(self, message: Any, key: str) -> str:
        return _str(message.get(key), key)

    def _pair(self, item: Any, what: str) -> tuple[str, Any]:
        pair = _obj(item, what) or {}
        return _str(pair.get("key"), "key"), pair.get("value")

    def _one_of(self, value: Any) -> tuple[str | None, Any]:
        anyvalue = _obj(value, "value")
        if not anyvalue:
            return None, None
        present = [(key, item) for key, item in anyvalue.items() if item is not None and key in _ANY_KEYS]
        if len(present) > 1:
            raise _Bad(f"a value sets {present[0][0]} and {present[1][0]}; give one")
        return present[0] if present else (None, None)

    def _leaf(self, key: str, item: Any) -> JSONScalar | None:
        if key == "stringValue":
            return _str(item, "stringValue")
        if key == "boolValue":
            return _bool(item, "boolValue")
        if key == "intValue":
            return _int(item, "intValue", -_INT64, _INT64)
        if key == "doubleValue":
            number = _double(item, "doubleValue")
            return number if math.isfinite(number) else None
        if key == "bytesValue":
            _str(item, "bytesValue")
            return None
        _int(item, key, -(2**31), 2**31)  # stringValueStrindex: profiles only
        return None

    def _members(self, key: str, item: Any) -> tuple[bool, Sequence[Any]]:
        return key == "kvlistValue", _list((_obj(item, key) or {}).get("values"), f"{key}.values")

    def _body_of(self, record: Any) -> Any:
        return record.get("body")

    def _ids(self, record: Any) -> tuple[bool, bool, bool]:
        return (
            bool(_str(record.get("traceId"), "traceId")),
            bool(_str(record.get("spanId"), "spanId")),
            bool(_int(record.get("flags"), "flags", 0, 2**32)),
        )

    def _record_fields(self, record: Any) -> dict[str, Any]:
        return {
            "time_unix_nano": _int(record.get("timeUnixNano"), "timeUnixNano", 0, _UINT64),
            "observed_time_unix_nano": _int(record.get("observedTimeUnixNano"), "observedTimeUnixNano", 0, _UINT64),
            "severity_number": _enum(record.get("severityNumber"), "severityNumber"),
            "severity_text": _str(record.get("severityText"), "severityText"),
            "event_name": _str(record.get("eventName"), "eventName"),
        }

    def _metric(self, value: Any, above: _Above, points: list[OtlpDataPoint]) -> None:
        metric = _obj(value, "each metric") or {}
        name = _str(metric.get("name"), "name")
        unit = _str(metric.get("unit"), "unit")
        present = [key for key in _DATA_KEYS if metric.get(key) is not None]
        if len(present) > 1:
            raise _Bad(f"a metric sets {present[0]} and {present[1]}; give one")
        if not present:
            return
        data_key = present[0]
        kind = _DATA_KEYS[data_key]
        try:
            data = _obj(metric[data_key], data_key) or {}
            temporality = _enum(data.get("aggregationTemporality"), "aggregationTemporality")
            monotonic = _bool(data.get("isMonotonic"), "isMonotonic")
            data_points = _list(data.get("dataPoints"), "dataPoints")
            self.count.add(len(data_points), "data points")
            for k, point_value in enumerate(data_points):
                try:
                    point = _obj(point_value, "each data point") or {}
                    points.append(self._point(point, kind, name, unit, temporality, monotonic, above))
                except _Bad as bad:
                    raise bad.at(f"dataPoints[{k}]") from None
        except _Bad as bad:
            raise bad.at(data_key) from None

    def _point(
        self,
        point: dict[str, Any],
        kind: MetricKind,
        name: str,
        unit: str,
        temporality: int,
        monotonic: bool,
        above: _Above,
    ) -> OtlpDataPoint:
        dropped = list(above.dropped)
        attributes, unsupported = self._attributes(point)
        dropped += [f"attr:{key}" for key in unsupported]
        if _list(point.get("exemplars"), "exemplars"):
            dropped.append("exemplars")
        flags = _int(point.get("flags"), "flags", 0, 2**32)
        value: int | float | None = None
        count = total = low = high = None
        if kind in ("gauge", "sum"):
            as_int, as_double = point.get("asInt"), point.get("asDouble")
            if as_int is not None and as_double is not None:
                raise _Bad("a data point sets asInt and asDouble; give one")
            if as_int is not None:
                value = _int(as_int, "asInt", -_INT64, _INT64)
            elif as_double is not None:
                number = _double(as_double, "asDouble")
                value = number if math.isfinite(number) else None
            if flags & _NO_RECORDED_VALUE:
                value = None
        else:
            count = _int(point.get("count"), "count", 0, _UINT64)
            total = self._optional_double(point.get("sum"), "sum")
            low = self._optional_double(point.get("min"), "min")
            high = self._optional_double(point.get("max"), "max")
            if point.get("bucketCounts") or point.get("positive") or point.get("negative"):
                dropped.append("buckets")
        return _decoded(
            OtlpDataPoint,
            above,
            attributes,
            dropped,
            metric=name,
            unit=unit,
            kind=kind,
            temporality=temporality if kind not in ("gauge", "summary") else 0,
            monotonic=monotonic if kind == "sum" else False,
            value=value,
            count=count,
            sum=total,
            min=low,
            max=high,
            start_time_unix_nano=_int(point.get("startTimeUnixNano"), "startTimeUnixNano", 0, _UINT64),
            time_unix_nano=_int(point.get("timeUnixNano"), "timeUnixNano", 0, _UINT64),
        )

    @staticmethod
    def _optional_double(value: object, what: str) -> float | None:
        if value is None:
            return None
        number = _double(value, what)
        return number if math.isfinite(number) else None


_ANY_KEYS = frozenset(
    {"stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue",
     "stringValueStrindex"}
)  # fmt: skip
_IDS = ("trace_id", "span_id", "flags")  # a log record's dropped names for what _ids finds
_NESTED = frozenset({"arrayValue", "kvlistValue", "array_value", "kvlist_value"})  # both encodings' names
_DATA_KEYS: dict[str, MetricKind] = {
    "gauge": "gauge",
    "sum": "sum",
    "histogram": "histogram",
    "exponentialHistogram": "exponential_histogram",
    "summary": "summary",
}


class _Marker:
    __slots__ = ()


_UNSUPPORTED = _Marker()


# --- protobuf ----------------------------------------------------------------------------------


class _ProtoWalker(_Walker):
    """The same records from the parsed messages (attribute access on upb messages is fast)."""

    def _request(self, request: Any) -> Any:
        return request

    def _open(self, value: Any, what: str) -> Any:
        return value

    def _field(self, message: Any, key: str) -> Any:
        return getattr(message, key)

    def _children(self, message: Any, key: str, proto_key: str) -> Sequence[Any]:
        children: Sequence[Any] = getattr(message, proto_key)
        return children

    def _text(self, message: Any, key: str) -> str:
        text: str = getattr(message, key)
        return text

    def _pair(self, item: Any, what: str) -> tuple[str, Any]:
        return item.key, item.value

    def _one_of(self, value: Any) -> tuple[str | None, Any]:
        return value.WhichOneof("value"), value

    def _leaf(self, key: str, item: Any) -> JSONScalar | None:
        if key == "string_value":
            text: str = item.string_value
            return text
        if key == "bool_value":
            flag: bool = item.bool_value
            return flag
        if key == "int_value":
            integer: int = item.int_value
            return integer
        if key == "double_value":
            number: float = item.double_value
            return number if math.isfinite(number) else None
        return None  # bytes, a profile string index, or no value

    def _members(self, key: str, item: Any) -> tuple[bool, Sequence[Any]]:
        is_kvlist = key == "kvlist_value"
        members: Sequence[Any] = item.kvlist_value.values if is_kvlist else item.array_value.values
        return is_kvlist, members

    def _body_of(self, record: Any) -> Any:
        return record.body if record.HasField("body") else None

    def _ids(self, record: Any) -> tuple[bool, bool, bool]:
        return bool(record.trace_id), bool(record.span_id), bool(record.flags)

    def _record_fields(self, record: Any) -> dict[str, Any]:
        return {
            "time_unix_nano": record.time_unix_nano,
            "observed_time_unix_nano": record.observed_time_unix_nano,
            "severity_number": record.severity_number,
            "severity_text": record.severity_text,
            "event_name": record.event_name,
        }

    def _metric(self, value: Any, above: _Above, points: list[OtlpDataPoint]) -> None:
        metric = value
        which = metric.WhichOneof("data")
        if which is None:
            return
        kind: MetricKind = _PROTO_KINDS[which]
        data = getattr(metric, which)
        temporality = data.aggregation_temporality if kind in ("sum", "histogram", "exponential_histogram") else 0
        monotonic = bool(data.is_monotonic) if kind == "sum" else False
        self.count.add(len(data.data_points), "data points")
        for k, point in enumerate(data.data_points):
            try:
                dropped = list(above.dropped)
                attributes, unsupported = self._attributes(point)
            except _Bad as bad:
                raise bad.at(f"{_PROTO_JSON_NAMES[which]}.dataPoints[{k}]") from None
            dropped += [f"attr:{key}" for key in unsupported]
            if kind != "summary" and len(point.exemplars):
                dropped.append("exemplars")
            number: int | float | None = None
            count = total = low = high = None
            if kind in ("gauge", "sum"):
                number_kind = point.WhichOneof("value")
                if number_kind == "as_int":
                    number = point.as_int
                elif number_kind == "as_double":
                    number = point.as_double if math.isfinite(point.as_double) else None
                if point.flags & _NO_RECORDED_VALUE:
                    number = None
            else:
                count = point.count
                total = self._optional(point, "sum")
                if kind != "summary":
                    low, high = self._optional(point, "min"), self._optional(point, "max")
                    if (kind == "histogram" and len(point.bucket_counts)) or (
                        kind == "exponential_histogram"
                        and (len(point.positive.bucket_counts) or len(point.negative.bucket_counts))
                    ):
                        dropped.append("buckets")
            points.append(
                _decoded(
                    OtlpDataPoint,
                    above,
                    attributes,
                    dropped,
                    metric=metric.name,
                    unit=metric.unit,
                    kind=kind,
                    temporality=temporality,
                    monotonic=monotonic,
                    value=number,
                    count=count,
                    sum=total,
                    min=low,
                    max=high,
                    start_time_unix_nano=point.start_time_unix_nano,
                    time_unix_nano=point.time_unix_nano,
                )
            )

    @staticmethod
    def _optional(point: Any, name: str) -> float | None:
        has_presence = name != "sum" or point.DESCRIPTOR.fields_by_name["sum"].has_presence
        if has_presence and not point.HasField(name):
            return None
        number = float(getattr(point, name))
        return number if math.isfinite(number) else None


_PROTO_KINDS: dict[str, MetricKind] = {
    "gauge": "gauge",
    "sum": "sum",
    "histogram": "histogram",
    "exponential_histogram": "exponential_histogram",
    "summary": "summary",
}
_PROTO_JSON_NAMES = {name: json_name for json_name, name in _DATA_KEYS.items()}


# ---------------------------------------------------------------------------------------------
# Which points become reports


def point_refusal(point: OtlpDataPoint) -> str | None:
    """Why a data point does not become a report (to count it in ``rejected_data_points`` with
    this message), or None when it does."""
    if point.kind in ("histogram", "exponential_histogram", "summary"):
        return (
            f"{point.metric!r} is a {point.kind.replace('_', ' ')}: Telemetry Tray takes one value per report, "
            "from Sum and Gauge points only; record a Counter or a Gauge instead, or leave this one out with a View"
        )
    if point.kind == "sum" and point.temporality == TEMPORALITY_CUMULATIVE and point.monotonic:
        return (
            f"{point.metric!r} is a cumulative sum: each export repeats a growing total; "
            "set OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta"
        )
    if point.kind == "sum" and point.temporality not in (TEMPORALITY_DELTA, TEMPORALITY_CUMULATIVE):
        return f"{point.metric!r} is a sum with no aggregation temporality"
    if point.value is None:
        return f"a point of {point.metric!r} has no recorded value (or one that is not a finite number)"
    return None


# ---------------------------------------------------------------------------------------------
# Mapping a record or point to a report


@functools.lru_cache(maxsize=4096)  # a manifest's few sources, asked for every record of every request
def parse_source(spec: str) -> tuple[SourceKind, str]:
    """``"attr:app.feature"`` → ``("attr", "app.feature")``, ``"body"`` → ``("body", "")``.
    Raises ValueError with what is wrong (rules/manifest.py turns it into a ManifestError)."""
    kind, colon, key = spec.partition(":")
    if kind in _KEYED:
        if not colon or not key:
            raise ValueError(f"source {spec[:80]!r} needs a key: {kind}:<key>")
        if len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"the key of source {kind}: is longer than {MAX_KEY_LENGTH} characters")
        return kind, key  # type: ignore[return-value]
    if kind in SOURCE_KINDS and not colon:
        return kind, ""
    raise ValueError(
        f"source {spec[:80]!r} is not one of attr:<key>, resource:<key>, body, event_name, severity, time, "
        "metric, value"
    )


def severity_name(number: int) -> str | None:
    """TRACE, DEBUG, INFO, WARN, ERROR or FATAL for a ``severity_number`` of 1 to 24, else None."""
    return SEVERITIES[(number - 1) // 4] if 1 <= number <= 24 else None


def to_report(
    record: OtlpLogRecord | OtlpDataPoint, sources: Mapping[str, str | None]
) -> tuple[dict[str, JSONScalar], list[str]]:
    """One report of a record or point through the fields' sources (field name → source; None
    or "" is the default ``attr:<name>``), and the names dropped (sorted, each once).

    A source with nothing there leaves the field out (the report check then names a missing
    required field): ``metric``/``value`` on a log record, ``body``/``event_name``/``severity``
    on a data point, an absent attribute, a time of 0. ``time`` is ISO 8601 UTC (microseconds;
    nanoseconds cut), ``severity`` the short name of the number's range.
    """
    report: dict[str, JSONScalar] = {}
    attrs_used: set[str] = set()
    resource_used: set[str] = set()
    parts_used: set[str] = set()
    is_log = isinstance(record, OtlpLogRecord)
    for name, spec in sources.items():
        kind, key = parse_source(spec or f"attr:{name}")
        value: JSONScalar | None = None
        if kind == "attr":
            attrs_used.add(key)
            value = record.attributes.get(key)
        elif kind == "resource":
            resource_used.add(key)
            value = record.resource.get(key)
        elif kind == "time":
            value = _nanos_to_iso(record.time) if record.time else None
        elif isinstance(record, OtlpLogRecord):
            parts_used.add(kind)
            if kind == "body":
                value = record.body
            elif kind == "event_name":
                value = record.event_name or None
            elif kind == "severity":
                value = severity_name(record.severity_number)
        elif kind == "metric":
            value = record.metric
        elif kind == "value":
            value = record.value
        if value is not None:
            report[name] = value
    dropped = set(record.dropped)
    dropped.update(f"attr:{key}" for key in record.attributes if key not in attrs_used)
    dropped.update(f"resource:{key}" for key in record.resource if key not in resource_used)
    if is_log:
        assert isinstance(record, OtlpLogRecord)
        if record.body is not None and "body" not in parts_used:
            dropped.add("body")
        if record.event_name and "event_name" not in parts_used:
            dropped.add("event_name")
        if (record.severity_number or record.severity_text) and "severity" not in parts_used:
            dropped.add("severity")
    return report, sorted(dropped)


# ---------------------------------------------------------------------------------------------
# Encoding (format = "otlp")

SCOPE_NAME = "telemetry-tray"
AGGREGATE_METRIC_PREFIX = "telemetry_tray.reports.by_"
_SEVERITY_NUMBERS = {name: 1 + 4 * i for i, name in enumerate(SEVERITIES)}


def _any_value(value: JSONScalar, field_type: str | None) -> dict[str, Any]:
    """A typed AnyValue by the field's manifest type (the value's own type when it does not fit)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int) and field_type != "number":
        return {"intValue": str(value)}
    if isinstance(value, int | float):
        return {"doubleValue": float(value)}
    return {"stringValue": value}


def _key_value(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


def _resource(
    *,
    service_name: str,
    app_id: str,
    batch_id: str,
    manifest_version: int | None,
    window_start: str,
    window_end: str,
    scope_json: str | None,
) -> dict[str, Any]:
    attributes: dict[str, dict[str, Any]] = {
        "service.name": {"stringValue": service_name},
        "telemetry_tray.app_id": {"stringValue": app_id},
        "telemetry_tray.batch_id": {"stringValue": batch_id},
        "telemetry_tray.window.start": {"stringValue": window_start},
        "telemetry_tray.window.end": {"stringValue": window_end},
    }
    if manifest_version is not None:
        attributes["telemetry_tray.manifest_version"] = {"intValue": str(manifest_version)}
    if scope_json is not None:
        # What the person approved (fields, coarsening, mode): the vendor can tell what is missing.
        attributes["telemetry_tray.scope"] = {"stringValue": scope_json}
    return {"attributes": [_key_value(key, attributes[key]) for key in sorted(attributes)]}


def _scope(scope_version: str) -> dict[str, Any]:
    return {"name": SCOPE_NAME, "version": scope_version} if scope_version else {"name": SCOPE_NAME}


def logs_request(
    *,
    batch_id: str,
    app_id: str,
    service_name: str,
    window_start: str,
    window_end: str,
    reports: Iterable[Mapping[str, JSONScalar]],
    field_types: Mapping[str, str],
    sources: Mapping[str, str | None] | None = None,
    manifest_version: int | None = None,
    scope_version: str = "",
    scope_json: str | None = None,
) -> dict[str, Any]:
    """The ``ExportLogsServiceRequest`` (as OTLP/JSON data) of a batch's approved records: one
    resource (service.name, ``telemetry_tray.batch_id``, app id, window, manifest version), one
    scope, one log record per report in order. Each field is an attribute named as the field,
    typed by ``field_types`` (integers as decimal strings), attributes sorted by key; a field
    whose source (``sources``, optional) is ``time``, ``event_name``, ``severity`` or ``body``
    goes back to that place of the record instead (a time to ``timeUnixNano``, a severity name to
    ``severityNumber`` and ``severityText``), so decoding and :func:`to_report` with the same
    sources give the reports back."""
    kinds = {name: parse_source(spec or f"attr:{name}")[0] for name, spec in (sources or {}).items()}
    records = []
    for report in reports:
        record: dict[str, Any] = {}
        attributes: list[dict[str, Any]] = []
        for name in sorted(report):
            value = report[name]
            kind = kinds.get(name, "attr")
            if kind == "time" and isinstance(value, str):
                try:
                    record["timeUnixNano"] = str(_iso_to_nanos(value))
                    continue
                except ValueError:
                    pass
            elif kind == "event_name" and isinstance(value, str):
                record["eventName"] = value
                continue
            elif kind == "severity" and isinstance(value, str):
                if value in _SEVERITY_NUMBERS:
                    record["severityNumber"] = _SEVERITY_NUMBERS[value]
                record["severityText"] = value
                continue
            elif kind == "body":
                record["body"] = _any_value(value, field_types.get(name))
                continue
            attributes.append(_key_value(name, _any_value(value, field_types.get(name))))
        if attributes:
            record["attributes"] = attributes
        records.append(record)
    resource = _resource(
        service_name=service_name,
        app_id=app_id,
        batch_id=batch_id,
        manifest_version=manifest_version,
        window_start=window_start,
        window_end=window_end,
        scope_json=scope_json,
    )
    return {
        "resourceLogs": [{"resource": resource, "scopeLogs": [{"scope": _scope(scope_version), "logRecords": records}]}]
    }


def encode_logs(
    *,
    batch_id: str,
    app_id: str,
    service_name: str,
    window_start: str,
    window_end: str,
    reports: Iterable[Mapping[str, JSONScalar]],
    field_types: Mapping[str, str],
    sources: Mapping[str, str | None] | None = None,
    manifest_version: int | None = None,
    scope_version: str = "",
    scope_json: str | None = None,
) -> bytes:
    """The canonical JSON bytes of :func:`logs_request`, to POST to ``<endpoint>/v1/logs``
    with ``Content-Type: application/json``."""
    return canonical_bytes(
        logs_request(
            batch_id=batch_id,
            app_id=app_id,
            service_name=service_name,
            window_start=window_start,
            window_end=window_end,
            reports=reports,
            field_types=field_types,
            sources=sources,
            manifest_version=manifest_version,
            scope_version=scope_version,
            scope_json=scope_json,
        )
    )


def metrics_request(
    *,
    batch_id: str,
    app_id: str,
    service_name: str,
    window_start: str,
    window_end: str,
    aggregates: Mapping[str, Mapping[str, int]],
    manifest_version: int | None = None,
    scope_version: str = "",
    scope_json: str | None = None,
) -> dict[str, Any]:
    """The ``ExportMetricsServiceRequest`` (as OTLP/JSON data) of a batch's aggregates
    (``{field: {value: count}}``, ``(other)`` folded in already): per field, sorted, one delta
    monotonic Sum ``telemetry_tray.reports.by_<field>`` (unit ``{report}``) with one point per
    value (sorted; the value as a string attribute named as the field; the count as ``asInt``;
    the window as start and time). Points of one metric partition the same reports, so they
    add up; different fields are different metrics so nothing is counted twice. No total is
    added: the vendor gets exactly the counts the person saw."""
    start = str(_iso_to_nanos(window_start))
    end = str(_iso_to_nanos(window_end))
    metrics = []
    for field in sorted(aggregates):
        counts = aggregates[field]
        points = [
            {
                "attributes": [_key_value(field, {"stringValue": value})],
                "startTimeUnixNano": start,
                "timeUnixNano": end,
                "asInt": str(counts[value]),
            }
            for value in sorted(counts)
        ]
        metrics.append(
            {
                "name": AGGREGATE_METRIC_PREFIX + field,
                "unit": "{report}",
                "sum": {"aggregationTemporality": TEMPORALITY_DELTA, "isMonotonic": True, "dataPoints": points},
            }
        )
    resource = _resource(
        service_name=service_name,
        app_id=app_id,
        batch_id=batch_id,
        manifest_version=manifest_version,
        window_start=window_start,
        window_end=window_end,
        scope_json=scope_json,
    )
    return {
        "resourceMetrics": [
            {"resource": resource, "scopeMetrics": [{"scope": _scope(scope_version), "metrics": metrics}]}
        ]
    }


def encode_metrics(
    *,
    batch_id: str,
    app_id: str,
    service_name: str,
    window_start: str,
    window_end: str,
    aggregates: Mapping[str, Mapping[str, int]],
    manifest_version: int | None = None,
    scope_version: str = "",
    scope_json: str | None = None,
) -> bytes:
    """The canonical JSON bytes of :func:`metrics_request`, to POST to ``<endpoint>/v1/metrics``
    with ``Content-Type: application/json``."""
    return canonical_bytes(
        metrics_request(
            batch_id=batch_id,
            app_id=app_id,
            service_name=service_name,
            window_start=window_start,
            window_end=window_end,
            aggregates=aggregates,
            manifest_version=manifest_version,
            scope_version=scope_version,
            scope_json=scope_json,
        )
    )


__all__ = [
    "AGGREGATE_METRIC_PREFIX",
    "MAX_ANY_DEPTH",
    "MAX_ANY_ITEMS",
    "MAX_ATTRIBUTES",
    "MAX_KEY_LENGTH",
    "MAX_RECORDS",
    "SCOPE_NAME",
    "SEVERITIES",
    "SOURCE_KINDS",
    "OtlpDataPoint",
    "OtlpLogRecord",
    "OtlpLogs",
    "OtlpMetrics",
    "decode_logs",
    "decode_metrics",
    "encode_logs",
    "encode_metrics",
    "logs_request",
    "media_type",
    "metrics_request",
    "parse_source",
    "point_refusal",
    "severity_name",
    "to_report",
]
