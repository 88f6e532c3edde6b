"""Benchmark of the OTLP/HTTP receiver: log records/s in protobuf requests of 100 records.

The instance runs as a real process (``run --headless``, its OTLP port a free one through
``TELEMETRY_TRAY_OTLP_PORT=0``), like ``http.ingest``; the load comes from this process over
keep-alive connections to ``POST /v1/logs``. The requests are ``ExportLogsServiceRequest``
messages built with the stock ``opentelemetry-proto`` classes, each with its own records (the
receiver stores identical bytes once, by design), under the resource a stock SDK sends. The
baseline is raw ``sqlite3`` inserting the rows those records become, 100 per transaction, in
the same run (the function ``core.ingest`` and ``http.ingest`` use).
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import sqlite3
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter

from tests.support.processes import Proc
from tray_app.core import Locations

from .core_bench import ROOT, SEED, BenchError, Report, Row, chunks, raw_insert_seconds, report_body
from .figures import Benchmark, Figure, Figures, Settings, best_of, temp_home
from .http_bench import CLIENT_THREADS

OTEL_NOTES = ROOT / "resources" / "manifests" / "otel-notes.toml"
SERVICE_NAME = "inkwell-notes"  # the manifest's [otlp] service_names
REPORTS = 100_000
RECORDS_PER_REQUEST = 100
RATIO_GOAL = 0.25
PROTOBUF = "application/x-protobuf"

# What Inkwell Notes logs (otel-notes.toml), and how often.
EVENTS = ("note.created", "note.exported", "search.run", "sync.failed", "app.crashed")
EVENT_WEIGHTS = (35, 20, 35, 8, 2)
SEVERITY_OF = {"note.created": 9, "note.exported": 9, "search.run": 9, "sync.failed": 13, "app.crashed": 21}
SEVERITY_NAMES = {9: "INFO", 13: "WARN", 17: "ERROR", 21: "FATAL"}
EXPORT_FORMATS = ("markdown", "pdf", "html")
ERROR_TYPES = ("TimeoutError", "ConnectionResetError", "SyncConflict", "MemoryError")
APP_VERSIONS = ("2.4.1", "2.4.0", "2.3.7")
APP_VERSION_WEIGHTS = (80, 15, 5)
OS_TYPES = ("linux", "windows", "darwin")
SDK_VERSION = "1.45.2"


def make_requests(count: int, per_request: int, seed: int = SEED) -> tuple[list[bytes], list[Report]]:
    """``count`` log records in protobuf request bodies of ``per_request`` records, and the
    reports the manifest makes of them (what the tray stores), in order; the same for the
    same seed. Each request is one install's export: the resource a stock Python SDK sends
    (service.name, its version and os.type, which the manifest takes; service.instance.id and
    telemetry.sdk.*, which it drops), then records a few seconds apart, so no two bodies match."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    rng = random.Random(seed)
    start = datetime(2026, 11, 24, tzinfo=UTC)
    bodies: list[bytes] = []
    reports: list[Report] = []
    for first in range(0, count, per_request):
        version = rng.choices(APP_VERSIONS, APP_VERSION_WEIGHTS)[0]
        os_type = rng.choice(OS_TYPES)
        request = ExportLogsServiceRequest()
        resource_logs = request.resource_logs.add()
        resource = {
            "service.name": SERVICE_NAME,
            "service.version": version,
            "os.type": os_type,
            "service.instance.id": str(uuid.UUID(int=rng.getrandbits(128))),
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.version": SDK_VERSION,
        }
        for key, value in resource.items():
            attribute = resource_logs.resource.attributes.add()
            attribute.key, attribute.value.string_value = key, value
        scope = resource_logs.scope_logs.add()
        scope.scope.name, scope.scope.version = "inkwell.notes", version
        moment = start + timedelta(seconds=rng.randrange(86_400))
        for _ in range(min(per_request, count - first)):
            moment += timedelta(microseconds=rng.randrange(1, 5_000_000))
            nanos = int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000_000
            nanos += moment.microsecond * 1000
            event = rng.choices(EVENTS, EVENT_WEIGHTS)[0]
            severity = SEVERITY_OF[event]
            record = scope.log_records.add()
            record.time_unix_nano = record.observed_time_unix_nano = nanos
            record.severity_number, record.severity_text = severity, SEVERITY_NAMES[severity]
            record.event_name = event
            report: Report = {
                "event": event,
                "severity": SEVERITY_NAMES[severity],
                "at": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ"),
                "app_version": version,
                "os": os_type,
            }
            if event == "note.exported":
                attribute = record.attributes.add()
                attribute.key = "inkwell.export.format"
                attribute.value.string_value = report["export_format"] = rng.choice(EXPORT_FORMATS)
            elif event == "search.run":
                attribute = record.attributes.add()
                attribute.key = "inkwell.search.duration_ms"
                attribute.value.int_value = report["search_ms"] = int(rng.lognormvariate(3.5, 1.0))
            elif event in ("sync.failed", "app.crashed"):
                attribute = record.attributes.add()
                attribute.key = "exception.type"
                attribute.value.string_value = report["error_type"] = rng.choice(ERROR_TYPES)
            reports.append(report)
        bodies.append(bytes(request.SerializeToString()))
    if len(set(bodies)) != len(bodies):
        raise BenchError("two request bodies are the same: the receiver would store the second as a resend")
    return bodies, reports


def _register(port: int) -> str:
    from tray_app.core import load_manifest

    manifest = json.dumps(load_manifest(OTEL_NOTES).to_obj()).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/v1/apps", manifest, {"Content-Type": "application/json"})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    if response.status != 201:
        raise BenchError(f"registration failed: {body}")
    return str(body["token"])


def _otlp_port(instance: Proc) -> int:
    """The port of the instance's OTLP receiver, from the ``otlp.json`` it wrote before it
    said where it listens."""
    path = Locations.under(instance.home).endpoint_file.with_name("otlp.json")
    receiver = json.loads(path.read_text(encoding="utf-8"))
    if receiver.get("url") is None:
        raise BenchError(f"the instance's OTLP receiver does not serve: {receiver.get('problem')}")
    return int(str(receiver["url"]).rsplit(":", 1)[1])


def _export_all(port: int, token: str, bodies: list[bytes], errors: list[str]) -> None:
    """POST each body to /v1/logs on one keep-alive connection; each must be answered 200
    with an ``ExportLogsServiceResponse`` that refuses nothing."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    headers = {"Content-Type": PROTOBUF, "Authorization": f"Bearer {token}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for body in bodies:
            conn.request("POST", "/v1/logs", body, headers)
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200 or response.getheader("Content-Type") != PROTOBUF:
                errors.append(f"HTTP {response.status}: {answer[:200]!r}")
                return
            partial = ExportLogsServiceResponse.FromString(answer).partial_success
            if partial.rejected_log_records:
                errors.append(f"{partial.rejected_log_records} records refused: {partial.error_message}")
                return
    finally:
        conn.close()


def _check_stored(home: Path, expected: list[str]) -> None:
    """The instance stored exactly the reports the records stand for (as a multiset: the
    clients' requests interleave)."""
    conn = sqlite3.connect(Locations.under(home).database)
    try:
        stored = [str(row[0]) for row in conn.execute("SELECT body FROM reports")]
    finally:
        conn.close()
    if len(stored) != len(expected):
        raise BenchError(f"{len(stored)} reports stored, {len(expected)} records sent")
    extra = Counter(stored) - Counter(expected)
    if extra:
        raise BenchError(f"the stored reports are not the records sent, e.g. {next(iter(extra))}")


def bench_otlp(settings: Settings) -> Figures:
    bodies, reports = make_requests(REPORTS, RECORDS_PER_REQUEST)
    expected = [report_body(r) for r in reports]
    rows: list[Row] = [("0" * 32, "2026-11-24T10:30:00Z", body) for body in expected]
    row_calls = chunks(rows, RECORDS_PER_REQUEST)
    request_bytes = sum(len(body) for body in bodies) / len(bodies)

    with temp_home() as tmp:
        counter = itertools.count()

        def otlp_trial() -> float:
            instance = Proc(tmp / f"otlp-{next(counter)}")
            errors: list[str] = []
            try:
                token = _register(instance.port)
                port = _otlp_port(instance)
                shares = [bodies[i::CLIENT_THREADS] for i in range(CLIENT_THREADS)]
                threads = [threading.Thread(target=_export_all, args=(port, token, s, errors)) for s in shares]
                start = perf_counter()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                elapsed = perf_counter() - start
            finally:
                instance.stop(timeout=30)
            if errors:
                raise BenchError(f"the OTLP receiver refused a request: {errors[0]}")
            _check_stored(instance.home, expected)
            return elapsed

        def raw_trial() -> float:
            return raw_insert_seconds(tmp / f"raw-{next(counter)}.sqlite3", row_calls)

        best = best_of(settings.repeat, {"otlp": otlp_trial, "raw": raw_trial})

    rate = REPORTS / best["otlp"]
    raw = REPORTS / best["raw"]
    return {
        "otlp_ingest_reports_per_s": Figure(
            rate,
            "reports/s",
            f"{REPORTS:,} OTLP log records POSTed to /v1/logs of a running instance's OTLP receiver (`run "
            f"--headless`, another process) as protobuf `ExportLogsServiceRequest`s of {RECORDS_PER_REQUEST} "
            f"records (about {request_bytes:,.0f} bytes each, every body different), over {CLIENT_THREADS} "
            "keep-alive connections; each answered 200 (protobuf, nothing refused) only after its reports are "
            "committed. One log record is one report.",
            baseline="otlp_raw_insert_reports_per_s",
            goal_min=RATIO_GOAL,
        ),
        "otlp_raw_insert_reports_per_s": Figure(
            raw,
            "reports/s",
            f"The reports those records become inserted with raw `sqlite3`, {RECORDS_PER_REQUEST} per "
            "transaction (WAL, synchronous=NORMAL), in the same run.",
        ),
        "otlp_ingest_ratio": Figure(
            rate / raw,
            "×",
            "`otlp_ingest_reports_per_s` ÷ `otlp_raw_insert_reports_per_s`.",
            goal_min=RATIO_GOAL,
        ),
    }


BENCHMARKS = (
    Benchmark(
        "http.otlp",
        "OTLP ingest over HTTP",
        f"OTLP/HTTP protobuf log records through the OTLP receiver of a running instance, beside raw `sqlite3` "
        f"inserts of the same rows. Goal: at least {RATIO_GOAL:g}× the raw rate in {RECORDS_PER_REQUEST}-record "
        "requests. Where the time goes: `python -m bench.otlp_stages`.",
        bench_otlp,
    ),
)
