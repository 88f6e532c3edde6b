"""The OTLP/HTTP receiver as a WSGI application: ``POST /v1/logs`` and ``POST /v1/metrics``.

A stock OpenTelemetry SDK reaches it with environment variables alone
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20TOKEN``,
``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``). It has every defence of the native API
(``wsgi_app.py``: Host, Origin and request-line checks, the body limit counted after gzip, the
bearer token, JSON error bodies) and is served by the same waitress server class on its own
port (``TELEMETRY_TRAY_OTLP_PORT``, ``instance.py``).

What a request becomes (docs/http-api.md, "OTLP/HTTP"):

* The app is the **token's** app. Its manifest must have an ``[otlp]`` table; each resource's
  ``service.name`` must be one of its ``service_names``, or that resource's records are
  refused (counted in ``partial_success``, with what to declare).
* Each log record, or each Sum or Gauge data point, becomes one report through the fields'
  ``source`` (``otlp_wire.to_report``), and goes to :meth:`Broker.ingest` like a native
  report: checked against the manifest, held while the app awaits consent. What the manifest
  does not take (resource attributes such as ``service.instance.id``, unmapped attributes,
  trace ids) is handed on as undeclared names, so the broker drops and counts them as it does
  a native report's undeclared fields, and the review shows them as dropped on arrival.
* OTLP has no idempotency key and exporters resend identical bytes after a lost answer, so
  the request's key is the SHA-256 of the app, the signal and the decompressed body: a
  resend within the key window (two days) is answered as the first time and stored once.
* The answer is ``200`` with an ``Export…ServiceResponse`` in the request's encoding (protobuf
  through ``opentelemetry-proto``, imported at the first protobuf request): ``partial_success``
  says how many records or points were refused and names what was refused and dropped, so a
  request with bad parts is never answered with a status an exporter retries. Errors are the
  API's JSON bodies: 400 an undecodable body, 401 a wrong token, 403 an app with no ``[otlp]``
  table, 413, 415, 503 with ``Retry-After`` when the database is busy or full.
* ``POST /v1/traces`` is refused with 404, which no exporter retries, saying to set
  ``OTEL_TRACES_EXPORTER=none``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

from ..core import (
    MAX_BODY_BYTES,
    AuthError,
    BlockedError,
    Broker,
    ConflictError,
    InputError,
    MalformedError,
    Manifest,
    NotFoundError,
    OtlpDataPoint,
    OtlpLogRecord,
    StoreError,
    TooLargeError,
    decode_logs,
    decode_metrics,
    media_type,
    point_refusal,
    to_report,
)
from .wsgi_app import Environ, ErrorTable, Handler, HttpError, LoopbackApp, Reply, bearer, cut, read_body, to_json

PROTOBUF_TYPE = "application/x-protobuf"
JSON_TYPE = "application/json"
DEFAULT_OTLP_PORT = 4318  # the OTLP/HTTP port (OTLP specification, "Default Port")
OTLP_PORT_ENV = "TELEMETRY_TRAY_OTLP_PORT"
MAX_MESSAGE = 2000  # characters of a partial_success error_message
_MAX_NAMES = 20  # dropped names listed in a message
_SERVICE_NAME = "resource:service.name"  # to_report's name for it when no field takes it
_MAX_REASONS = 3  # distinct refusal reasons listed in a message

TRACES_MESSAGE = (
    "Telemetry Tray does not take traces: spans carry URLs, queries and ids that nobody reviews. "
    "Set OTEL_TRACES_EXPORTER=none in the app's environment to stop sending them; "
    "logs and metrics go to /v1/logs and /v1/metrics."
)

TRACES_REASON = "Traces Not Accepted; set OTEL_TRACES_EXPORTER=none"  # the status line's phrase

Signal = Literal["logs", "metrics"]
Encoding = Literal["json", "protobuf"]

# An OTLP body that does not decode is 400 like a bad native body, under its own code.
_OTLP_ERRORS: ErrorTable = (
    (MalformedError, 400, "bad_otlp"),
    (TooLargeError, 413, "too_large"),
    (AuthError, 401, "unauthorized"),
    (NotFoundError, 404, "not_found"),
    (InputError, 400, "bad_request"),
    (StoreError, 503, "unavailable"),
)


class OtlpApp(LoopbackApp):
    """The OTLP/HTTP receiver. ``on_ingest`` is called after reports were stored."""

    errors = _OTLP_ERRORS
    paths_hint = "the OTLP/HTTP receiver takes POST /v1/logs and POST /v1/metrics."

    def __init__(self, broker: Broker, on_ingest: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.broker = broker
        self.on_ingest = on_ingest

    def routes(self) -> dict[str, dict[str, Handler]]:
        return {
            "/v1/logs": {"POST": lambda environ: self._export(environ, "logs")},
            "/v1/metrics": {"POST": lambda environ: self._export(environ, "metrics")},
            "/v1/traces": {"POST": _traces},
        }

    def _export(self, environ: Environ, signal: Signal) -> Reply:
        content_type = str(environ.get("CONTENT_TYPE", ""))
        encoding = media_type(content_type)
        if encoding is None:
            raise HttpError(
                415,
                "unsupported_media_type",
                f"Send OTLP/HTTP as Content-Type: {PROTOBUF_TYPE} or {JSON_TYPE} "
                "(OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf).",
            )
        token = bearer(environ, required=True)
        assert token is not None
        app = self.broker.authenticate(token)  # before the body is read, as on /v1/reports
        manifest = app.manifest
        if not manifest.otlp_service_names:
            raise HttpError(
                403,
                "otlp_not_declared",
                f"The manifest of {app.app_id!r} has no [otlp] table, so it takes no OpenTelemetry data. "
                'Add [otlp] service_names = ["<the app\'s service.name>"] to it and register the new version '
                "(telemetry-tray register FILE).",
            )
        body = read_body(environ, MAX_BODY_BYTES)
        outcome = _Outcome(signal, app.app_id, manifest.otlp_service_names)
        records: Sequence[OtlpLogRecord | OtlpDataPoint]
        if signal == "logs":
            logs = decode_logs(body, content_type)
            records, unknown = logs.records, logs.unknown_keys
        else:
            metrics = decode_metrics(body, content_type)
            records, unknown = metrics.points, metrics.unknown_keys
        if unknown and not records:
            # Quoted by repr: a key is the client's text, and exporters log this message.
            keys = ", ".join(cut(repr(key), 66) for key in unknown)
            outcome.notes.append(
                f"the request held no {outcome.what}; its keys {keys} are not OTLP/JSON "
                "(which spells keys in lowerCamelCase) and were ignored"
            )
        reports = self._reports(manifest, records, outcome)
        if reports:
            self._ingest(app.app_id, signal, body, reports, outcome)
        return outcome.reply(encoding)

    def _reports(
        self, manifest: Manifest, records: Sequence[OtlpLogRecord | OtlpDataPoint], outcome: _Outcome
    ) -> list[dict[str, Any]]:
        """Each record or point that may become a report, as one: its declared fields, and
        the names it carried that no field takes (values left out) for the broker to drop
        and count. What may not is counted in ``outcome``."""
        allowed = set(manifest.otlp_service_names)
        sources = {field.name: field.source for field in manifest.fields}
        declared = set(sources)
        reports: list[dict[str, Any]] = []
        for record in records:
            name = record.service_name
            if name not in allowed:
                outcome.foreign[name] += 1
                continue
            if isinstance(record, OtlpDataPoint):
                refusal = point_refusal(record)
                if refusal is not None:
                    outcome.refused[refusal] += 1
                    continue
            report, dropped = to_report(record, sources)
            row: dict[str, Any] = dict(report)
            for dropped_name in dropped:
                if dropped_name == _SERVICE_NAME:
                    continue  # declared in [otlp] service_names and checked above: not a surprise drop
                # "body" or "severity" not taken may share a declared field's name.
                row[f"record:{dropped_name}" if dropped_name in declared else dropped_name] = None
            reports.append(row)
        return reports

    def _ingest(
        self, app_id: str, signal: Signal, body: bytes, reports: list[dict[str, Any]], outcome: _Outcome
    ) -> None:
        key = _request_key(app_id, signal, body)
        try:
            result = self.broker.ingest(app_id, reports, key=key)
        except BlockedError:
            outcome.blocked = len(reports)
            return
        except ConflictError:
            # The same bytes under this key gave other reports: the manifest changed since
            # the first time. The first is stored; this one is the same request again.
            outcome.notes.append("the same request arrived before and was stored then; not stored again")
            return
        outcome.rejected = [error for _, error in result.rejected]
        outcome.dropped = list(result.dropped_fields)
        if result.accepted and not result.repeated and self.on_ingest is not None:
            self.on_ingest()


class _Outcome:
    """What one request's records became, and the ``partial_success`` that says so."""

    def __init__(self, signal: Signal, app_id: str, allowed: Sequence[str]) -> None:
        self.signal = signal
        self.what = "log records" if signal == "logs" else "data points"
        self.app_id = app_id
        self.allowed = tuple(allowed)
        self.foreign: Counter[str | None] = Counter()  # service.name → records refused
        self.refused: Counter[str] = Counter()  # point_refusal's reason → points refused
        self.rejected: list[str] = []  # the broker's reason per rejected report
        self.blocked = 0
        self.dropped: list[str] = []
        self.notes: list[str] = []

    def _many(self, count: int) -> str:
        """The count with its noun: 1 log record, 3 log records."""
        return f"{count} {self.what if count != 1 else self.what[:-1]}"

    @property
    def rejected_count(self) -> int:
        return sum(self.foreign.values()) + sum(self.refused.values()) + len(self.rejected) + self.blocked

    def message(self) -> str:
        parts: list[str] = []
        for name, count in sorted(self.foreign.items(), key=lambda item: (item[0] is None, item[0] or "")):
            shown = "no service.name" if name is None else f"service.name {cut(name, 60)!r}"
            listed = ", ".join(repr(n) for n in self.allowed)
            parts.append(
                f"{self._many(count)} with {shown} refused: the manifest of {self.app_id!r} lists only {listed} "
                "in [otlp] service_names; set OTEL_SERVICE_NAME to one of them, or declare this one there "
                "and register the new version"
            )
        for reason, count in sorted(self.refused.items()):
            parts.append(f"{self._many(count)} refused: {reason}")
        if self.rejected:
            reasons = Counter(self.rejected)
            shown = "; ".join(reason for reason, _ in reasons.most_common(_MAX_REASONS))
            more = f" (and {len(reasons) - _MAX_REASONS} other reasons)" if len(reasons) > _MAX_REASONS else ""
            parts.append(f"{self._many(len(self.rejected))} refused by the manifest's fields: {shown}{more}")
        if self.blocked:
            parts.append(
                f"{self._many(self.blocked)} refused: the person blocked {self.app_id!r} in Telemetry Tray; "
                "nothing it sends is kept until they allow it again"
            )
        if self.dropped:
            names = ", ".join(self.dropped[:_MAX_NAMES])
            more = f" and {len(self.dropped) - _MAX_NAMES} more" if len(self.dropped) > _MAX_NAMES else ""
            parts.append(
                f"dropped what the manifest does not declare (the person sees these names, never the values): "
                f"{names}{more}"
            )
        parts.extend(self.notes)
        text = "Telemetry Tray: " + "; ".join(parts) + "." if parts else ""
        return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"

    def reply(self, encoding: Encoding) -> Reply:
        rejected, message = self.rejected_count, self.message()
        if encoding == "json":
            partial: dict[str, Any] = {}
            if rejected:
                field = "rejectedLogRecords" if self.signal == "logs" else "rejectedDataPoints"
                partial[field] = str(rejected)  # int64: a decimal string in OTLP/JSON
            if message:
                partial["errorMessage"] = message
            return Reply(200, to_json({"partialSuccess": partial} if partial else {}), JSON_TYPE)
        return Reply(200, _protobuf_response(self.signal, rejected, message), PROTOBUF_TYPE)


def _protobuf_response(signal: Signal, rejected: int, message: str) -> bytes:
    # Imported at the first protobuf request, so a tray at rest does not load protobuf.
    response: Any
    if signal == "logs":
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs

        response = logs.ExportLogsServiceResponse()
        if rejected or message:
            response.partial_success.rejected_log_records = rejected
            response.partial_success.error_message = message
    else:
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics

        response = metrics.ExportMetricsServiceResponse()
        if rejected or message:
            response.partial_success.rejected_data_points = rejected
            response.partial_success.error_message = message
    return bytes(response.SerializeToString())


def _request_key(app_id: str, signal: Signal, body: bytes) -> str:
    """The request's idempotency key: the same app sending the same (decompressed) bytes to
    the same signal is the same request."""
    digest = hashlib.sha256()
    for part in (app_id.encode("utf-8"), signal.encode("ascii"), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return f"otlp-{signal}:{digest.hexdigest()}"


def _traces(environ: Environ) -> Reply:
    raise HttpError(404, "traces_not_accepted", TRACES_MESSAGE, reason=TRACES_REASON)


__all__ = ["DEFAULT_OTLP_PORT", "OTLP_PORT_ENV", "TRACES_MESSAGE", "OtlpApp"]
