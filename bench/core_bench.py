"""Benchmarks of the core: ingest into the store, and rendering a batch's payload.

Each is measured beside raw ``sqlite3`` doing the same rows in the same run, so the
ratio says how much the broker's rules cost on top of the database itself.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any, TypeVar

from tray_app.core import Broker, Locations, Manifest, load_manifest

from .figures import Benchmark, Figure, Figures, Settings, best_of, temp_home

ROOT = Path(__file__).resolve().parent.parent
PHOTOEDIT = ROOT / "resources" / "manifests" / "photoedit.toml"

REPORTS = 100_000
CALL_SIZE = 100  # reports per ingest call, like one HTTP request
SEED = 20261124
INGEST_GOAL = 0.25

EVENTS = ("open", "export", "crop", "filter", "crash")
EVENT_WEIGHTS = (30, 25, 20, 20, 5)
APP_VERSIONS = ("3.1.4", "3.1.3", "3.0.9")
APP_VERSION_WEIGHTS = (80, 15, 5)
OS_VERSIONS = (
    "Windows 11 23H2",
    "Windows 10 22H2",
    "macOS 14.5",
    "macOS 15.1",
    "Ubuntu 24.04",
    "Fedora 41",
    "Debian 12",
)
INSTALLS = 2_000

# The store's connection settings (tray_app/core/storage/store.py); checked against it at run time.
RAW_JOURNAL_MODE = "WAL"
RAW_SYNCHRONOUS = 1  # NORMAL

_INSERT = "INSERT INTO reports (batch_id, received_at, body) VALUES (?, ?, ?)"
_SELECT = "SELECT body FROM reports WHERE batch_id = ? ORDER BY id"
# The shape of the store's reports table and its index (without the foreign key).
_RAW_SCHEMA = (
    """CREATE TABLE reports (
        id INTEGER PRIMARY KEY,
        batch_id TEXT NOT NULL,
        received_at TEXT NOT NULL,
        body TEXT NOT NULL
    )""",
    "CREATE INDEX reports_by_batch ON reports(batch_id)",
)

Report = dict[str, Any]
Row = tuple[str, str, str]
T = TypeVar("T")


class BenchError(RuntimeError):
    """The benchmark did not measure what it meant to (wrong rows, wrong settings)."""


def make_reports(count: int, seed: int = SEED) -> list[Report]:
    """Varied, valid PhotoEdit reports; the same ones for the same seed."""
    rng = random.Random(seed)
    installs = [f"{rng.getrandbits(64):016x}" for _ in range(INSTALLS)]
    day = datetime(2026, 11, 24, tzinfo=UTC)
    reports = []
    for _ in range(count):
        ts = day + timedelta(seconds=rng.randrange(86_400))
        reports.append(
            {
                "event": rng.choices(EVENTS, EVENT_WEIGHTS)[0],
                "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "app_version": rng.choices(APP_VERSIONS, APP_VERSION_WEIGHTS)[0],
                "duration_ms": int(rng.lognormvariate(5.0, 1.2)),
                "os_version": rng.choice(OS_VERSIONS),
                "gpu_accelerated": rng.random() < 0.7,
                "install_id": rng.choice(installs),
            }
        )
    return reports


def canonical(obj: object) -> bytes:
    """The canonical JSON of DESIGN.md ("Payload sent to the vendor")."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def report_body(report: Report) -> str:
    """A report as the store keeps it: compact JSON with sorted keys."""
    return json.dumps(report, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def open_app(home: Path, clock: Callable[[], datetime] | None = None) -> tuple[Broker, Manifest]:
    """A broker in ``home`` with PhotoEdit registered and allowed (policy ``ask``)."""
    locations = Locations.under(home)
    broker = Broker.open(locations) if clock is None else Broker.open(locations, clock)
    manifest = load_manifest(PHOTOEDIT)
    broker.register(manifest)
    broker.set_consent(manifest.app_id, True)
    return broker, manifest


def _check_store_pragmas(broker: Broker) -> None:
    """The raw baseline must run with the store's settings, or the ratio means nothing."""
    conn = broker.store._conn  # the store's own connection for this thread
    journal = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    synchronous = int(conn.execute("PRAGMA synchronous").fetchone()[0])
    if (journal, synchronous) != (RAW_JOURNAL_MODE.lower(), RAW_SYNCHRONOUS):
        raise BenchError(
            f"the store now runs journal_mode={journal}, synchronous={synchronous}; "
            "update the raw baseline's pragmas in bench/core_bench.py to match"
        )


# -- ingest ----------------------------------------------------------------------------


def bench_ingest(settings: Settings) -> Figures:
    reports = make_reports(REPORTS)
    calls = chunks(reports, CALL_SIZE)
    bodies = [report_body(r) for r in reports]
    rows: list[Row] = [("0" * 32, "2026-11-24T10:30:00Z", body) for body in bodies]
    row_calls = chunks(rows, CALL_SIZE)

    with temp_home() as tmp:
        counter = itertools.count()

        def broker_trial() -> float:
            home = tmp / f"broker-{next(counter)}"
            broker, manifest = open_app(home)
            try:
                _check_store_pragmas(broker)
                accepted = 0
                start = perf_counter()
                for call in calls:
                    accepted += broker.ingest(manifest.app_id, call).accepted
                elapsed = perf_counter() - start
            finally:
                broker.close()
            if accepted != len(reports):
                raise BenchError(f"the broker accepted {accepted} of {len(reports)} reports")
            _check_stored(Locations.under(home).database, bodies)
            shutil.rmtree(home)
            return elapsed

        def raw_trial(transactions: list[list[Row]]) -> float:
            path = tmp / f"raw-{next(counter)}.sqlite3"
            elapsed = raw_insert_seconds(path, transactions)
            _check_stored(path, bodies)
            for leftover in tmp.glob(f"{path.name}*"):
                leftover.unlink()
            return elapsed

        best = best_of(
            settings.repeat,
            {
                "broker": broker_trial,
                "raw": lambda: raw_trial(row_calls),
                "raw_one_txn": lambda: raw_trial([rows]),
            },
        )

    ingest = len(reports) / best["broker"]
    raw = len(reports) / best["raw"]
    raw_one = len(reports) / best["raw_one_txn"]
    per_call = f"in calls of {CALL_SIZE} reports, one transaction each"
    return {
        "broker_ingest_reports_per_s": Figure(
            ingest,
            "reports/s",
            f"{len(reports):,} PhotoEdit reports through `Broker.ingest` {per_call} (like HTTP requests): "
            "check against the manifest, normalise, serialise, store.",
            baseline="raw_insert_reports_per_s",
            goal_min=INGEST_GOAL,
        ),
        "raw_insert_reports_per_s": Figure(
            raw,
            "reports/s",
            "The same rows (the JSON bodies the broker stores) inserted with raw `sqlite3` `executemany` "
            f"{per_call} (`BEGIN IMMEDIATE` … `COMMIT`), into a table of the store's shape and index "
            "(without the foreign key to `batches`, whose cost is lost in the noise), "
            "WAL and `synchronous=NORMAL` like the store.",
        ),
        "raw_insert_one_txn_reports_per_s": Figure(
            raw_one,
            "reports/s",
            "As `raw_insert_reports_per_s`, but all rows in one transaction: what SQLite does "
            "without per-commit costs (context only).",
            baseline="raw_insert_reports_per_s",
        ),
        "broker_ingest_ratio": Figure(
            ingest / raw,
            "×",
            "`broker_ingest_reports_per_s` ÷ `raw_insert_reports_per_s` (same transaction granularity).",
            goal_min=INGEST_GOAL,
        ),
    }


def raw_insert_seconds(path: Path, transactions: list[list[Row]]) -> float:
    """Raw sqlite3 inserts of ``transactions`` (lists of rows) into a fresh table of the
    store's shape, one transaction each; the seconds the inserts took."""
    conn = _raw_connect(path)
    try:
        for statement in _RAW_SCHEMA:
            conn.execute(statement)
        start = perf_counter()
        for transaction in transactions:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT, transaction)
            conn.execute("COMMIT")
        return perf_counter() - start
    finally:
        conn.close()


def pending_batch(broker: Broker, manifest: Manifest, reports: list[Report]) -> str:
    """Ingest ``reports`` into one batch and close it: the batch id, now pending."""
    batch_ids = {broker.ingest(manifest.app_id, call).batch_id for call in chunks(reports, 1_000)}
    if len(batch_ids) != 1 or None in batch_ids:
        raise BenchError(f"the reports went into {len(batch_ids)} batches, not one")
    batch_id = str(batch_ids.pop())
    closed = broker.close_batches(force=True)
    if [(c.batch_id, c.status) for c in closed] != [(batch_id, "pending")]:
        raise BenchError(f"closing the batch gave {closed}, not one pending batch")
    return batch_id


def big_pending_batch(home: Path, count: int) -> tuple[Broker, str]:
    """A broker in ``home`` with one pending PhotoEdit batch of ``count`` reports.

    The reports are made here and gone when it returns: the harness's own dicts would
    make every garbage collection in the measured code walk them too, and a running
    instance has nothing like them."""
    reports = make_reports(count)
    # One frozen moment, so a run across midnight UTC still fills a single daily batch.
    moment = datetime.now(UTC).replace(microsecond=0)
    broker, manifest = open_app(home, lambda: moment)
    try:
        return broker, pending_batch(broker, manifest, reports)
    except BaseException:
        broker.close()
        raise


def _raw_connect(path: Path) -> sqlite3.Connection:
    """A connection set up like the store's (autocommit, WAL, synchronous=NORMAL)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode={RAW_JOURNAL_MODE}")
    conn.execute(f"PRAGMA synchronous={RAW_SYNCHRONOUS}")
    return conn


def _check_stored(database: Path, bodies: list[str]) -> None:
    """The database holds exactly ``bodies``, in order: both sides stored the same rows."""
    conn = sqlite3.connect(database)
    try:
        stored = [str(body) for (body,) in conn.execute("SELECT body FROM reports ORDER BY id")]
    finally:
        conn.close()
    if stored != bodies:
        raise BenchError(f"{database.name} holds other report bodies than the benchmark meant to store")


# -- render ----------------------------------------------------------------------------


def bench_render(settings: Settings) -> Figures:
    count = REPORTS
    with temp_home() as tmp:
        broker, batch_id = big_pending_batch(tmp / "home", count)
        try:
            aggregate_scope = broker.edited_scope(batch_id, mode="aggregate")
            database = Locations.under(tmp / "home").database
            sizes: dict[str, int] = {}
            bodies: dict[str, bytes] = {}

            narrowed_scope = broker.edited_scope(batch_id, exclude=["duration_ms"])

            def render_trial(kind: str) -> float:
                scope = aggregate_scope if kind == "aggregate" else None
                broker.forget_preview()  # from the database, as when the batch is first opened
                start = perf_counter()
                view = broker.view(batch_id, scope)
                elapsed = perf_counter() - start
                if view.payload is None or view.reports != count:
                    raise BenchError(f"the view of the batch shows {view.reports} reports and no payload")
                sizes[kind] = view.payload.size
                bodies[kind] = view.payload.body
                return elapsed

            def rerender_trial() -> float:
                broker.view(batch_id)  # decoded and kept, as while a person looks at it
                start = perf_counter()
                view = broker.view(batch_id, narrowed_scope)
                elapsed = perf_counter() - start
                if view.payload is None or b'"duration_ms"' in view.payload.body:
                    raise BenchError("the narrowed view still sends duration_ms")
                return elapsed

            def digest_trial() -> float:
                body = bodies["records"]
                start = perf_counter()
                hashlib.sha256(body).hexdigest()
                return perf_counter() - start

            def raw_trial() -> float:
                conn = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
                try:
                    start = perf_counter()
                    rows = conn.execute(_SELECT, (batch_id,)).fetchall()
                    canonical([json.loads(body) for (body,) in rows])
                    elapsed = perf_counter() - start
                finally:
                    conn.close()
                if len(rows) != count:
                    raise BenchError(f"raw sqlite3 read {len(rows)} reports, not {count}")
                return elapsed

            best = best_of(
                settings.repeat,
                {
                    "records": lambda: render_trial("records"),
                    "rerender": rerender_trial,
                    "digest": digest_trial,
                    "aggregate": lambda: render_trial("aggregate"),
                    "raw": raw_trial,
                },
            )
        finally:
            broker.close()

    n = f"{count:,}"
    return {
        "render_100k_ms": Figure(
            best["records"] * 1000,
            "ms",
            f"`Broker.view` of a closed (pending) batch of {n} reports, default scope "
            "(records; `ts` coarsened to the hour; `account_email` excluded), nothing kept from "
            "an earlier view: read, decode into columns, scope, canonical JSON and its SHA-256.",
            baseline="raw_select_100k_ms",
        ),
        "rerender_100k_ms": Figure(
            best["rerender"] * 1000,
            "ms",
            "`Broker.view` of the same batch under another scope (`duration_ms` excluded) right after a "
            "view of it: the decoded columns are kept, so this is scope, canonical JSON and SHA-256.",
            baseline="raw_select_100k_ms",
        ),
        "render_100k_aggregate_ms": Figure(
            best["aggregate"] * 1000,
            "ms",
            "`Broker.view` of the same batch with the default scope in `aggregate` mode (counts per field "
            "and value, rare values folded).",
            baseline="raw_select_100k_ms",
        ),
        "digest_100k_ms": Figure(
            best["digest"] * 1000,
            "ms",
            "`hashlib.sha256` of the records payload (already part of `render_100k_ms`).",
        ),
        "raw_select_100k_ms": Figure(
            best["raw"] * 1000,
            "ms",
            f"The straightforward way, before any scoping: raw `sqlite3` select of the same {n} bodies, "
            "`json.loads` of each and one canonical `json.dumps` of the list.",
        ),
        "payload_100k_bytes": Figure(
            sizes["records"], "bytes", f"Size of the records payload of {n} reports (default scope)."
        ),
        "payload_100k_aggregate_bytes": Figure(
            sizes["aggregate"], "bytes", f"Size of the aggregate payload of {n} reports."
        ),
    }


BENCHMARKS = (
    Benchmark(
        "core.ingest",
        "Ingest",
        f"Reports through the broker into the store, beside raw `sqlite3` inserts of the same rows. "
        f"Goal: the broker ingests at least {INGEST_GOAL:g}× the raw insert rate.",
        bench_ingest,
    ),
    Benchmark(
        "core.render",
        "Render and digest",
        "The payload of a 100,000-report batch (what the review window previews and approval "
        "records), beside the least work any renderer must do.",
        bench_render,
    ),
)
