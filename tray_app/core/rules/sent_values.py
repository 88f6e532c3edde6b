"""The values a stored payload sent, read back out of its bytes, for both wire formats.

What "what this batch says" compares a batch with (DESIGN.md, principle 7: "whether something
links it to the person's other batches") is what the vendor already has: the payloads of the
app's earlier delivered batches, kept until retention purges them. This module reads one such
payload back into counts per field and value, in :func:`~.payload.value_key` spelling (the
spelling of aggregates and of :meth:`~.columns.ReportColumns.value_counts`):

* ``telemetry-tray``: the ``reports`` (each value counted per record that has it) or the
  ``aggregates`` (as sent: ``(other)`` included, already folded);
* ``otlp``: a logs request is decoded by :func:`~.otlp_wire.decode_logs` and each record mapped
  back to a report by :func:`~.otlp_wire.to_report` through the fields' sources as
  :func:`~.otlp_wire.logs_request` placed them; a metrics request by
  :func:`~.otlp_wire.decode_metrics`, one count per data point.

Pure: bytes in, counts out. A payload that is not one of those raises
:class:`~tray_app.core.errors.MalformedError`.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import MalformedError
from .canonical_json import canonical_bytes
from .manifest import FieldSpec, Manifest
from .otlp_wire import (
    AGGREGATE_METRIC_PREFIX,
    JSON_TYPE,
    MAX_RECORDS,
    decode_logs,
    decode_metrics,
    parse_source,
    to_report,
)
from .payload import OTHER, value_key
from .scope import Mode

__all__ = ["EarlierValues", "SentValues", "can_link", "earlier_values", "linkable_values", "match_key", "sent_values"]

# Where logs_request puts a field other than as an attribute named after it.
_PLACED = frozenset({"time", "event_name", "severity", "body"})
# Sensitivities whose values tie reports to one person whatever their type.
_PERSONAL = frozenset({"identifying", "pseudonymous"})
# Types with few values many people share (or, for timestamps, values everyone's batches of a
# day share): a value in common with an earlier batch says little about who sent it.
_SHARED_TYPES = frozenset({"boolean", "enum", "version", "timestamp"})


@dataclass(frozen=True)
class SentValues:
    """What one payload sent, per field: value (value_key spelling) → how many reports
    (records) or the count sent (aggregates, ``(other)`` included)."""

    mode: Mode
    records: int | None  # how many records it held; None for aggregates (a payload of counts does not say)
    counts: Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class EarlierValues:
    """The values the app's earlier delivered batches sent, for comparing a batch with them.

    ``values``: field → value (:func:`match_key` spelling) → how many of the compared batches
    sent it; ``compared``: how many earlier delivered batches were read; ``purged``: how many
    more could not be, because retention purged their payloads (or they could not be read)."""

    values: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    compared: int = 0
    purged: int = 0


def can_link(spec: FieldSpec | None, level: str | None = None) -> bool:
    """Whether one shared value of this field can tie two batches to the same person:
    identifying and pseudonymous fields always; otherwise strings and exact (not bucketed)
    numbers, which an install may hold alone (an id, a host name, a screen size in pixels).
    Booleans, enums, versions and timestamps take values everyone shares."""
    if spec is None:
        return level is None  # not declared: read as a string
    if spec.sensitivity in _PERSONAL:
        return True
    return spec.type not in _SHARED_TYPES and level is None


def match_key(kind: str, value: str) -> str:
    """A value in value_key spelling, spelt so that equal values compare equal: a number
    field's ``3.0`` (OTLP sends a ``number`` as a double) and ``3`` are one value."""
    if kind not in ("integer", "number") or value in ("true", "false"):
        return value
    try:
        int(value)
        return value
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value
    if math.isfinite(number) and number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return value


def sent_values(body: bytes, manifest: Manifest) -> SentValues:
    """The values a stored payload sent, per field (``manifest``: the batch's own version,
    whose sources placed the fields of an OTLP logs request)."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedError(f"a stored payload is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedError("a stored payload is not a JSON object")
    if isinstance(obj.get("reports"), list):
        return _records(obj["reports"])
    if isinstance(obj.get("aggregates"), dict):
        return _aggregates(obj["aggregates"])
    if "resourceLogs" in obj:
        return _otlp_logs(obj, manifest)
    if "resourceMetrics" in obj:
        return _otlp_metrics(obj)
    raise MalformedError("a stored payload has neither reports, aggregates, nor OTLP logs or metrics")


def earlier_values(sent: Iterable[Mapping[str, Iterable[str]]], *, purged: int = 0) -> EarlierValues:
    """Earlier batches' values (per batch: field → its distinct values, in match_key
    spelling), as how many batches sent each value."""
    values: dict[str, Counter[str]] = {}
    compared = 0
    for batch in sent:
        compared += 1
        for name, distinct in batch.items():
            values.setdefault(name, Counter()).update(set(distinct))
    return EarlierValues(values, compared, purged)


def linkable_values(sent: SentValues, manifest: Manifest) -> dict[str, frozenset[str]]:
    """The distinct values (match_key spelling) a payload sent of the fields that can link
    (:func:`can_link`, by ``manifest``, the batch's own version), ``(other)`` left out: what
    a later batch is compared with."""
    out: dict[str, frozenset[str]] = {}
    for name, counts in sent.counts.items():
        spec = manifest.field(name)
        if not can_link(spec):
            continue
        kind = spec.type if spec is not None else "string"
        named = (match_key(kind, v) for v in counts if not (sent.mode == "aggregate" and v == OTHER))
        out[name] = frozenset(named)
    return out


# -- the formats ------------------------------------------------------------------------


def _records(reports: list[Any]) -> SentValues:
    counts: dict[str, Counter[str]] = {}
    for report in reports:
        if not isinstance(report, dict):
            raise MalformedError("a stored payload's reports are not all objects")
        for name, value in report.items():
            counter = counts.get(name)
            if counter is None:
                counter = counts[name] = Counter()
            counter[value_key(value)] += 1
    return SentValues("records", len(reports), counts)


def _aggregates(aggregates: dict[str, Any]) -> SentValues:
    counts: dict[str, dict[str, int]] = {}
    for name, values in aggregates.items():
        if not isinstance(values, dict) or not all(type(n) is int for n in values.values()):
            raise MalformedError("a stored payload's aggregates are not counts per value")
        counts[name] = dict(values)
    return SentValues("aggregate", None, counts)


def _sources_back(manifest: Manifest) -> dict[str, str | None]:
    """Each field's source as logs_request wrote it: its own place for time, event name,
    severity and body; otherwise an attribute named after the field (whatever its source)."""
    back: dict[str, str | None] = {}
    for spec in manifest.fields:
        kind, _ = parse_source(spec.otlp_source)
        back[spec.name] = spec.otlp_source if kind in _PLACED else f"attr:{spec.name}"
    return back


def _log_chunks(obj: dict[str, Any]) -> Iterator[bytes]:
    """A logs request as requests of at most MAX_RECORDS records each (a big batch's payload
    holds more than the decoder takes in one request), as JSON bytes."""
    for resource in _list(obj.get("resourceLogs")):
        for scope in _list(resource.get("scopeLogs") if isinstance(resource, dict) else None):
            records = _list(scope.get("logRecords") if isinstance(scope, dict) else None)
            for start in range(0, len(records), MAX_RECORDS):
                part = {**scope, "logRecords": records[start : start + MAX_RECORDS]}
                yield canonical_bytes({"resourceLogs": [{**resource, "scopeLogs": [part]}]})


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _otlp_logs(obj: dict[str, Any], manifest: Manifest) -> SentValues:
    sources = _sources_back(manifest)
    counts: dict[str, Counter[str]] = {}
    records = 0
    for part in _log_chunks(obj):
        for record in decode_logs(part, JSON_TYPE, max_bytes=len(part)).records:
            records += 1
            report, _ = to_report(record, sources)
            for name, value in report.items():
                counts.setdefault(name, Counter())[value_key(value)] += 1
    return SentValues("records", records, counts)


def _metric_chunks(obj: dict[str, Any]) -> Iterator[bytes]:
    """A metrics request as requests of one metric and at most MAX_RECORDS of its points each."""
    for resource in _list(obj.get("resourceMetrics")):
        for scope in _list(resource.get("scopeMetrics") if isinstance(resource, dict) else None):
            for metric in _list(scope.get("metrics") if isinstance(scope, dict) else None):
                data = metric.get("sum") if isinstance(metric, dict) else None
                if not isinstance(data, dict):
                    raise MalformedError("a stored OTLP payload holds a metric that is not a sum of counts")
                points = _list(data.get("dataPoints"))
                for start in range(0, len(points), MAX_RECORDS):
                    one = {**metric, "sum": {**data, "dataPoints": points[start : start + MAX_RECORDS]}}
                    part = {**scope, "metrics": [one]}
                    yield canonical_bytes({"resourceMetrics": [{**resource, "scopeMetrics": [part]}]})


def _otlp_metrics(obj: dict[str, Any]) -> SentValues:
    counts: dict[str, dict[str, int]] = {}
    for part in _metric_chunks(obj):
        for point in decode_metrics(part, JSON_TYPE, max_bytes=len(part)).points:
            name = point.metric.removeprefix(AGGREGATE_METRIC_PREFIX)
            value = point.attributes.get(name)
            if point.metric == name or not isinstance(value, str) or type(point.value) is not int:
                raise MalformedError(f"a stored OTLP payload has a data point that is not a count: {point.metric!r}")
            counts.setdefault(name, {})[value] = point.value
    return SentValues("aggregate", None, counts)
