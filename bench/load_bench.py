"""Load: many apps reporting at once to the tray while its window is open and a vendor is slow.

The tray (Qt offscreen, so its review window is open, with the instance inside it: endpoint,
housekeeping, delivery) runs in this process; the clients run in another
(:mod:`bench.load_clients`); the tests' vendor on 127.0.0.1 (:mod:`tests.support.fake_vendor`)
takes ``vendor_delay_s`` to answer each batch, so the delivery threads are busy all along.
Measured: requests and errors, reports accepted and reports stored (nothing may be lost), the
UI thread's event-loop lag (a 20 ms timer's lateness), before the load (the baseline) and
during it, and the process's memory.
:func:`run_load` is also what ``tests/promises/test_load.py`` runs, shorter.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean
from time import perf_counter

from tests.support.fake_vendor import vendor

from .core_bench import ROOT, BenchError
from .figures import Benchmark, Figure, Figures, Settings, temp_home

CLIENTS = 50
LOAD_S = 60.0
PER_REQUEST = 20
VENDOR_DELAY_S = 2.0
APPROVED_BATCHES = 150
PROBE_MS = 20
LAG_GOAL_MS = 100.0
RSS_GROWTH_GOAL_MIB = 10.0


@dataclass(frozen=True)
class LoadResult:
    requests: int
    accepted: int
    stored: int
    errors: int
    statuses: dict[str, int]
    elapsed_s: float
    request_p99_ms: float
    lag_idle_p99_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    rss_start_mib: float
    rss_end_mib: float
    deliveries: int

    @property
    def lost(self) -> int:
        return self.accepted - self.stored


def _prepare(home: Path, vendor_url: str, approved: int) -> str:
    """PhotoEdit (hourly, sending to the slow vendor) allowed, with ``approved`` batches
    approved and waiting to be delivered; the app's token."""
    from tray_app.core import Broker, Locations
    from tray_app.core.platform.paths import resources_dir
    from tray_app.core.rules.manifest import load_manifest, manifest_from_obj

    obj = load_manifest(resources_dir() / "manifests" / "photoedit.toml").to_obj()
    manifest = manifest_from_obj({**obj, "endpoint": vendor_url, "cadence": "hourly"})
    now = datetime.now(UTC).replace(microsecond=0)
    moment = [now]
    broker = Broker.open(Locations.under(home), lambda: moment[0])
    try:
        token = broker.register(manifest).token
        broker.set_consent(manifest.app_id, True)
        for hour in range(approved, 0, -1):
            moment[0] = now - timedelta(hours=hour)
            broker.ingest(manifest.app_id, [{"event": "crop", "app_version": "3.1.4"}])
        moment[0] = now
        broker.close_batches(force=True)
        for batch in broker.pending():
            broker.approve(batch.batch_id)
        if len(broker.pending()) or broker.overview().approved < approved:
            raise BenchError(f"could not prepare {approved} approved batches")
        return token
    finally:
        broker.close()


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise BenchError("no VmRSS in /proc/self/status")


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0


def run_load(
    clients: int = CLIENTS,
    seconds: float = LOAD_S,
    *,
    per_request: int = PER_REQUEST,
    vendor_delay_s: float = VENDOR_DELAY_S,
    approved: int = APPROVED_BATCHES,
    baseline_s: float = 5.0,
) -> LoadResult:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from tray_app.core import Locations
    from tray_app.core.platform.autostart import XdgAutostart
    from tray_app.ui.application import TrayApp

    qt = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(qt, QApplication)
    with vendor([("hang", vendor_delay_s)]) as slow, temp_home() as tmp:
        home = tmp / "home"
        token = _prepare(home, slow.url, approved)
        tray = TrayApp(Locations.under(home), autostart=XdgAutostart(tmp / "config"))
        lags: list[float] = []
        last = [perf_counter()]

        def tick() -> None:
            at = perf_counter()
            lags.append(max(0.0, (at - last[0]) * 1000 - PROBE_MS))
            last[0] = at

        probe = QTimer()
        probe.setInterval(PROBE_MS)
        probe.timeout.connect(tick)

        def pump(until: Callable[[], bool], timeout: float) -> None:
            deadline = perf_counter() + timeout
            while not until():
                if perf_counter() > deadline:
                    raise BenchError(f"gave up waiting after {timeout:g} s")
                pause = QEventLoop()
                QTimer.singleShot(5, pause.quit)
                pause.exec()

        try:
            tray.start()
            pump(lambda: tray.endpoint is not None, 30)
            assert tray.endpoint is not None
            last[0] = perf_counter()
            probe.start()
            started = perf_counter()
            pump(lambda: perf_counter() - started > baseline_s, baseline_s + 5)
            idle_lags = list(lags)
            lags.clear()
            rss: list[float] = []
            load = subprocess.Popen(
                [sys.executable, "-m", "bench.load_clients", tray.endpoint.url, token, str(clients), str(seconds),
                 str(per_request)],
                cwd=ROOT, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            next_sample = perf_counter()

            def done() -> bool:
                nonlocal next_sample
                if perf_counter() >= next_sample:
                    rss.append(_rss_mib())
                    next_sample += 1.0
                return load.poll() is not None

            pump(done, seconds + 60)
            probe.stop()
            out, _ = load.communicate()
            summary = json.loads(out.strip().splitlines()[-1])
            deliveries = len(slow.received)
        finally:
            tray.quit()
        database = Locations.under(home).database
        with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as conn:
            stored = int(conn.execute("SELECT count(*) FROM reports").fetchone()[0])
    errors = sum(n for status, n in summary["statuses"].items() if status != "202") + sum(summary["errors"].values())
    window = max(1, min(10, len(rss) // 3))
    return LoadResult(
        requests=summary["requests"],
        accepted=summary["accepted"],
        stored=stored,
        errors=errors,
        statuses=summary["statuses"],
        elapsed_s=summary["elapsed_s"],
        request_p99_ms=summary["p99_ms"],
        lag_idle_p99_ms=_percentile(idle_lags, 0.99),
        lag_p99_ms=_percentile(lags, 0.99),
        lag_max_ms=max(lags, default=0.0),
        # The first samples include start-up growth (caches, connections); flat means the
        # later ones do not keep growing.
        rss_start_mib=mean(rss[window : 2 * window]) if len(rss) >= 2 * window else rss[0],
        rss_end_mib=mean(rss[-window:]),
        deliveries=deliveries,
    )


def bench_load(settings: Settings) -> Figures:
    r = run_load()
    if r.lost:
        raise BenchError(f"{r.lost} accepted reports are not in the database")
    what = (
        f"{CLIENTS} clients (threads of another process, keep-alive, {PER_REQUEST} reports a request) for "
        f"{LOAD_S:g} s against the tray's endpoint, the tray's review window open (Qt offscreen), and "
        f"{APPROVED_BATCHES} approved batches being delivered to a vendor that takes {VENDOR_DELAY_S:g} s to answer."
    )
    return {
        "load_requests_per_s": Figure(r.requests / r.elapsed_s, "req/s", f"{what} Requests answered per second."),
        "load_reports_accepted": Figure(float(r.accepted), "reports", "Reports answered 202 during that run."),
        "load_reports_lost": Figure(
            float(r.lost), "reports", "Reports answered 202 but not in the database afterwards.", goal_max=0
        ),
        "load_errors": Figure(
            float(r.errors), "answers", f"Answers other than 202, and transport errors: {r.statuses}.", goal_max=0
        ),
        "load_request_p99_ms": Figure(r.request_p99_ms, "ms", "99th percentile of a request's round trip."),
        "load_ui_lag_p99_ms": Figure(
            r.lag_p99_ms,
            "ms",
            f"How late a {PROBE_MS} ms timer on the UI thread fired during the load (99th percentile; the "
            f"worst: {r.lag_max_ms:.0f} ms). Baseline: the same probe before the load.",
            baseline="load_ui_lag_idle_p99_ms",
            goal_max=LAG_GOAL_MS,
        ),
        "load_ui_lag_idle_p99_ms": Figure(
            r.lag_idle_p99_ms, "ms", "The same probe for 5 s before the load (deliveries already under way)."
        ),
        "load_rss_growth_mib": Figure(
            r.rss_end_mib - r.rss_start_mib,
            "MiB",
            f"The process's `VmRSS` over the run: mean of the last 10 s ({r.rss_end_mib:.1f} MiB) − mean of "
            f"10 s after the first 10 ({r.rss_start_mib:.1f} MiB).",
            goal_max=RSS_GROWTH_GOAL_MIB,
        ),
        "load_deliveries": Figure(float(r.deliveries), "batches", "Batches the slow vendor received meanwhile."),
    }


BENCHMARKS = (
    Benchmark(
        "reliability.load",
        "Under load",
        f"{CLIENTS} apps reporting at once for {LOAD_S:g} s while the window is open and a vendor is slow. "
        f"Goals: nothing lost, no errors, the UI thread late by at most {LAG_GOAL_MS:g} ms (p99), memory flat.",
        bench_load,
    ),
)
