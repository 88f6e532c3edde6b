"""What a vendor receives for an approved batch in its manifest's wire format, and where.

One rule for every path that needs the bytes (the review's preview, ``show``, the approval's
digest, the stored payload the forwarder sends), so they are always the same bytes:

* ``telemetry-tray``: the canonical JSON envelope of DESIGN.md, "Payload sent to the vendor"
  (:meth:`ReportColumns.render`, tested byte for byte against :func:`payload.reference_render`);
* ``dap``: the canonical JSON of the measurements, tasks and operators (rules/dap_batch.py): what
  the person approves; the forwarder seals the DAP-09 reports from exactly that object;
* ``otlp``: the canonical JSON bytes of an OTLP/HTTP JSON request (DESIGN.md, "Wire formats"):
  records as an ``ExportLogsServiceRequest`` to ``<endpoint>/v1/logs``, aggregates as delta
  monotonic Sums in an ``ExportMetricsServiceRequest`` to ``<endpoint>/v1/metrics``.

The OTLP request's resource carries what the telemetry-tray envelope carries: the app, the
batch id (``telemetry_tray.batch_id``: OTLP has no idempotency key), the window, the manifest
version and the scope the person approved (``telemetry_tray.scope``, its canonical JSON), so
the vendor can tell what was left out or coarsened. Its ``service.name`` is the first of the
manifest's ``[otlp] service_names`` (the name the app sends under), else the app id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ... import __version__
from .canonical_json import canonical_json
from .columns import ReportColumns
from .dap_batch import dap_payload, dap_scope
from .manifest import Manifest, WireFormat
from .otlp_wire import logs_request, metrics_request
from .payload import BatchFrame, Payload, aggregate, reference_render, scoped_records
from .reports import Report
from .scope import Scope

__all__ = [
    "OTLP_LOGS_PATH", "OTLP_METRICS_PATH", "destination", "reference_vendor_body", "sent_scope", "vendor_body",
]  # fmt: skip

OTLP_LOGS_PATH = "/v1/logs"
OTLP_METRICS_PATH = "/v1/metrics"


def vendor_body(columns: ReportColumns, frame: BatchFrame, manifest: Manifest, scope: Scope) -> Payload:
    """The bytes the vendor gets for this batch under ``scope``, from its decoded columns (for
    ``dap``: the measurements the reports are made from, rules/dap_batch.py)."""
    if manifest.format == WireFormat.DAP:
        return dap_payload(frame, manifest, scope, columns.scoped_records(dap_scope(manifest, scope)))
    if manifest.format == WireFormat.OTLP:
        if scope.mode == "aggregate":
            return _otlp_metrics(frame, manifest, scope, columns.aggregates(scope, manifest.min_count))
        return _otlp_logs(frame, manifest, scope, columns.scoped_records(scope))
    return columns.render(frame, manifest, scope)


def reference_vendor_body(
    frame: BatchFrame, manifest: Manifest, scope: Scope, reports: Iterable[Report], *, noise_seed: bytes | None = None
) -> Payload:
    """:func:`vendor_body` the slow and obvious way (one dict per report), the reference the
    columns' path is tested against; ``noise_seed`` is the batch's secret (the columns hold
    their own)."""
    if manifest.format == WireFormat.DAP:
        sent = dap_scope(manifest, scope)
        return dap_payload(frame, manifest, scope, list(scoped_records(manifest, sent, reports, noise_seed=noise_seed)))
    if manifest.format == WireFormat.OTLP:
        scoped = scoped_records(manifest, scope, reports, noise_seed=noise_seed)
        if scope.mode == "aggregate":
            return _otlp_metrics(frame, manifest, scope, aggregate(scope.fields, scoped, manifest.min_count))
        return _otlp_logs(frame, manifest, scope, scoped)
    return reference_render(frame, manifest, scope, reports, noise_seed=noise_seed)


def sent_scope(manifest: Manifest, scope: Scope) -> Scope:
    """What of ``scope`` the wire format sends: for ``dap`` the fields a task measures, exactly
    (no coarsening, no aggregate mode); the scope itself for the others. A batch's summary
    says what is sent, so it is made under this scope."""
    return dap_scope(manifest, scope) if manifest.format == WireFormat.DAP else scope


def destination(manifest: Manifest, scope: Scope) -> str:
    """Where the approved bytes go: the manifest's endpoint, or for ``otlp`` the collector's
    base URL with the signal's path added (as OTLP exporters add it to
    ``OTEL_EXPORTER_OTLP_ENDPOINT``: after any path the base has, before its query)."""
    if manifest.format != WireFormat.OTLP:
        return manifest.endpoint
    signal = OTLP_METRICS_PATH if scope.mode == "aggregate" else OTLP_LOGS_PATH
    parts = urlsplit(manifest.endpoint)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + signal))


def _service_name(manifest: Manifest) -> str:
    return manifest.otlp_service_names[0] if manifest.otlp_service_names else manifest.app_id


def _otlp_frame(frame: BatchFrame, manifest: Manifest, scope: Scope) -> dict[str, Any]:
    """What both OTLP requests say of the batch (their resource and instrumentation scope)."""
    return {
        "batch_id": frame.batch_id,
        "app_id": frame.app_id,
        "service_name": _service_name(manifest),
        "window_start": frame.window_start,
        "window_end": frame.window_end,
        "manifest_version": frame.manifest_version,
        "scope_version": __version__,
        "scope_json": canonical_json(scope.to_obj()),
    }


def _otlp_logs(frame: BatchFrame, manifest: Manifest, scope: Scope, records: Iterable[Report]) -> Payload:
    return Payload.of(
        logs_request(
            **_otlp_frame(frame, manifest, scope),
            reports=records,
            field_types={spec.name: spec.type for spec in manifest.fields},
            sources={spec.name: spec.source for spec in manifest.fields},
        )
    )


def _otlp_metrics(
    frame: BatchFrame, manifest: Manifest, scope: Scope, aggregates: Mapping[str, Mapping[str, int]]
) -> Payload:
    return Payload.of(metrics_request(**_otlp_frame(frame, manifest, scope), aggregates=aggregates))
