"""Benchmark of the loopback endpoint: reports/s over HTTP and single-report latency.

The instance runs as a real process (``run --headless``); the load comes from this
process over keep-alive connections. The baseline is raw ``sqlite3`` inserting the
same rows, 100 per transaction, in the same run.
"""

from __future__ import annotations

import http.client
import itertools
import json
import statistics
import threading
import uuid
from pathlib import Path
from time import perf_counter

from tests.support.processes import Proc
from tray_app.core import Locations

from .core_bench import (
    CALL_SIZE,
    PHOTOEDIT,
    BenchError,
    chunks,
    make_reports,
    raw_insert_seconds,
    report_body,
)
from .figures import Benchmark, Figure, Figures, Settings, best_of, temp_home

REPORTS = 100_000
SINGLE_REQUESTS = 2_000
CLIENT_THREADS = 2
RATIO_GOAL = 0.25


def _register(port: int) -> str:
    manifest = json.dumps(_manifest_obj()).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/v1/apps", manifest, {"Content-Type": "application/json"})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    if response.status != 201:
        raise BenchError(f"registration failed: {body}")
    return str(body["token"])


def _manifest_obj() -> dict[str, object]:
    from tray_app.core import load_manifest

    return load_manifest(PHOTOEDIT).to_obj()


def _send_all(port: int, token: str, bodies: list[bytes], keyed: bool = False) -> list[float]:
    """POST each body on one keep-alive connection (each with its own Idempotency-Key
    when ``keyed``, as the client SDK sends them); return each request's seconds."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for body in bodies:
        if keyed:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        start = perf_counter()
        conn.request("POST", "/v1/reports", body, headers)
        response = conn.getresponse()
        answer = response.read()
        times.append(perf_counter() - start)
        if response.status != 202:
            raise BenchError(f"HTTP {response.status}: {answer[:200]!r}")
    conn.close()
    return times


def bench_http(settings: Settings) -> Figures:
    reports = make_reports(REPORTS)
    batch_bodies = [json.dumps({"reports": call}).encode() for call in chunks(reports, CALL_SIZE)]
    single_bodies = [json.dumps(r).encode() for r in reports[:SINGLE_REQUESTS]]
    rows = [("0" * 32, "2026-11-24T10:30:00Z", report_body(r)) for r in reports]
    row_calls = chunks(rows, CALL_SIZE)
    latencies: list[float] = []

    with temp_home() as tmp:
        counter = itertools.count()

        def http_trial(keyed: bool = False) -> float:
            instance = Proc(tmp / f"http-{next(counter)}")
            try:
                token = _register(instance.port)
                shares = [batch_bodies[i::CLIENT_THREADS] for i in range(CLIENT_THREADS)]
                threads = [threading.Thread(target=_send_all, args=(instance.port, token, s, keyed)) for s in shares]
                start = perf_counter()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                elapsed = perf_counter() - start
            finally:
                instance.stop(timeout=30)
            _check_count(instance.home, REPORTS)
            return elapsed

        def single_trial() -> float:
            instance = Proc(tmp / f"single-{next(counter)}")
            try:
                token = _register(instance.port)
                times = _send_all(instance.port, token, single_bodies)
            finally:
                instance.stop(timeout=30)
            _check_count(instance.home, SINGLE_REQUESTS)
            if not latencies or sorted(times)[len(times) // 2] < statistics.median(latencies):
                latencies[:] = times
            return sum(times)

        def raw_trial() -> float:
            return raw_insert_seconds(tmp / f"raw-{next(counter)}.sqlite3", row_calls)

        best = best_of(
            settings.repeat,
            {"http": http_trial, "keyed": lambda: http_trial(True), "single": single_trial, "raw": raw_trial},
        )

    rate = REPORTS / best["http"]
    raw = REPORTS / best["raw"]
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return {
        "ingest_reports_per_s": Figure(
            rate,
            "reports/s",
            f"{REPORTS:,} reports POSTed to /v1/reports of a running instance (`run --headless`, another "
            f"process) in requests of {CALL_SIZE}, over {CLIENT_THREADS} keep-alive connections; each "
            "answered 202 only after it is committed.",
            baseline="http_raw_insert_reports_per_s",
            goal_min=RATIO_GOAL,
        ),
        "ingest_keyed_reports_per_s": Figure(
            REPORTS / best["keyed"],
            "reports/s",
            "The same with an `Idempotency-Key` on each request, as the client SDK sends them (the key and "
            "the SHA-256 of the request's reports are stored with it, so a resend is stored once).",
            baseline="ingest_reports_per_s",
        ),
        "http_raw_insert_reports_per_s": Figure(
            raw,
            "reports/s",
            f"The same rows inserted with raw `sqlite3`, {CALL_SIZE} per transaction (WAL, synchronous=NORMAL), "
            "in the same run.",
        ),
        "ingest_ratio": Figure(
            rate / raw,
            "×",
            "`ingest_reports_per_s` ÷ `http_raw_insert_reports_per_s`.",
            goal_min=RATIO_GOAL,
        ),
        "ingest_single_p50_ms": Figure(
            p50, "ms", f"Median latency of {SINGLE_REQUESTS:,} single-report requests on one keep-alive connection."
        ),
        "ingest_single_p99_ms": Figure(p99, "ms", "99th percentile latency of the same single-report requests."),
    }


def _check_count(home: Path, expected: int) -> None:
    import sqlite3

    conn = sqlite3.connect(Locations.under(home).database)
    try:
        stored = conn.execute("SELECT count(*) FROM reports").fetchone()[0]
    finally:
        conn.close()
    if stored != expected:
        raise BenchError(f"{stored} reports stored, {expected} sent")


BENCHMARKS = (
    Benchmark(
        "http.ingest",
        "Ingest over HTTP",
        f"Reports through the loopback endpoint of a running instance, beside raw `sqlite3` inserts of "
        f"the same rows. Goal: at least {RATIO_GOAL:g}× the raw rate in {CALL_SIZE}-report requests.",
        bench_http,
    ),
)
