"""Benchmark of the client SDK: what ``TelemetryClient.report()`` costs the app's thread.

Measured beside the OpenTelemetry SDK emitting one log record through its
``BatchLogRecordProcessor`` (the usual way an app hands telemetry to a background
exporter), in the same run, with the same reports. The instance runs as a real
process (``run --headless``), so the SDK's background thread really encodes and sends
while the app's thread reports, as in an app; the OpenTelemetry exporter does nothing,
which favours OpenTelemetry.
"""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from tests.support.processes import Proc
from tray_app.client import ClientStats, TelemetryClient
from tray_app.core import Broker, Locations

from .core_bench import PHOTOEDIT, BenchError, make_reports
from .figures import Benchmark, Figure, Figures, Settings, best_of, temp_home

CALLS = 200_000
DISTINCT = 10_000  # distinct reports, handed in over and over
DELIVERED = 50_000  # reports for the delivery rate, in steps the queue holds
STEP = 5_000
REPORT_GOAL_US = 5.0
RATIO_GOAL = 0.5


class _CountingExporter(LogRecordExporter):
    """Exports nowhere; counts what it was given, to show the processor really ran."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.exported += len(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def bench_report(settings: Settings) -> Figures:
    pool = make_reports(DISTINCT)
    calls = [pool[i % DISTINCT] for i in range(CALLS)]
    sdk_runs: list[ClientStats] = []
    otel_exported: list[int] = []

    with temp_home() as home:
        instance = Proc(home)
        try:
            locations = Locations.under(home)
            registered = TelemetryClient.register(PHOTOEDIT, locations=locations)
            registered.close()
            broker = Broker.open(locations)
            try:
                broker.set_consent(registered.app_id, True)
            finally:
                broker.close()

            def sdk_trial() -> float:
                client = TelemetryClient(registered.app_id, registered.token, locations=locations)
                report = client.report
                start = perf_counter()
                for obj in calls:
                    report(obj)
                elapsed = perf_counter() - start
                if not client.close(timeout=120):
                    raise BenchError("the client did not finish sending within two minutes")
                stats = client.stats
                if stats.queued != CALLS or stats.sent + stats.dropped != CALLS or not stats.sent:
                    raise BenchError(f"the client's reports do not add up: {stats}")
                sdk_runs.append(stats)
                return elapsed

            def otel_trial() -> float:
                exporter = _CountingExporter()
                provider = LoggerProvider(resource=Resource.create({"service.name": "photoedit"}))
                provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
                logger = provider.get_logger("org.example.photoedit")
                emit = logger.emit
                info = SeverityNumber.INFO
                start = perf_counter()
                for obj in calls:
                    emit(severity_number=info, body=obj["event"], attributes=obj)
                elapsed = perf_counter() - start
                provider.shutdown()
                if not exporter.exported:
                    raise BenchError("OpenTelemetry exported nothing")
                otel_exported.append(exporter.exported)
                return elapsed

            def delivered_trial() -> float:
                client = TelemetryClient(registered.app_id, registered.token, locations=locations)
                report = client.report
                start = perf_counter()
                for first in range(0, DELIVERED, STEP):
                    for obj in calls[first : first + STEP]:
                        report(obj)
                    client.flush(timeout=120)
                elapsed = perf_counter() - start
                client.close(timeout=120)
                stats = client.stats
                if stats.sent != DELIVERED:
                    raise BenchError(f"the client did not deliver every report: {stats}")
                return elapsed

            best = best_of(settings.repeat, {"sdk": sdk_trial, "otel": otel_trial, "delivered": delivered_trial})
        finally:
            instance.stop(timeout=30)

    sdk_us = best["sdk"] / CALLS * 1e6
    otel_us = best["otel"] / CALLS * 1e6
    sent = min(stats.sent for stats in sdk_runs)
    return {
        "sdk_report_us": Figure(
            sdk_us,
            "µs",
            f"Mean time of `TelemetryClient.report()` on the app's thread, over {CALLS:,} calls in a loop "
            f"({DISTINCT:,} distinct PhotoEdit reports), while its background thread encodes and POSTs batches "
            f"to a running instance (`run --headless`, another process). The loop outruns the instance, so "
            f"the 10,000-report queue drops the oldest: at least {sent:,} of each run's reports were sent, "
            "the rest dropped and counted.",
            goal_max=REPORT_GOAL_US,
        ),
        "otel_emit_us": Figure(
            otel_us,
            "µs",
            "Mean time of OpenTelemetry SDK `Logger.emit()` (the report's fields as attributes, INFO) through "
            f"a default `BatchLogRecordProcessor` with an exporter that does nothing, over the same {CALLS:,} "
            f"calls, in the same run ({min(otel_exported):,} or more of them exported).",
        ),
        "sdk_report_ratio": Figure(
            sdk_us / otel_us,
            "×",
            "`sdk_report_us` ÷ `otel_emit_us`.",
            goal_max=RATIO_GOAL,
        ),
        "sdk_delivered_reports_per_s": Figure(
            DELIVERED / best["delivered"],
            "reports/s",
            f"{DELIVERED:,} reports through `report()` in steps of {STEP:,}, each followed by `flush()`, so "
            "none is dropped: what the background thread delivers (encode, POST in batches of 500, stored by "
            "the instance) when the app waits for it.",
        ),
    }


BENCHMARKS = (
    Benchmark(
        "sdk.report",
        "Client SDK report()",
        "What handing one report to the client SDK costs the app's thread, beside the OpenTelemetry SDK "
        f"emitting one log record. Goals: at most {REPORT_GOAL_US:g} µs, and at most {RATIO_GOAL:g}× "
        "OpenTelemetry's time.",
        bench_report,
    ),
)
