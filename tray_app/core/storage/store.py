"""The SQLite store: rows in, rows out, no business rules.

One database file (WAL, mode 0600) shared by every process on the same home. Each
thread gets its own connection; writes run in ``BEGIN IMMEDIATE`` transactions so
two processes serialise on the write lock instead of failing half-way. Opening
migrates the schema (after copying the file) and refuses a database from a newer
version of the program.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from ..errors import NewerDatabaseError, StoreError
from ..platform.files import ensure_private_file, put_in_place
from ..rules.consent import AppStatus, BatchStatus, Policy
from ..rules.receipts import Action, Receipt
from .migrations import FILLS, LATEST, MIGRATIONS

BUSY_TIMEOUT_S = 30.0


class _Slot:
    """Holds a thread's connection; when the thread's local storage drops it, it is closed."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


@dataclass(frozen=True)
class AppRecord:
    app_id: str
    name: str
    vendor: str
    endpoint: str
    manifest_version: int
    status: AppStatus
    policy: Policy
    scope: str
    token_hash: str
    registered_at: str
    updated_at: str


@dataclass(frozen=True)
class BatchRecord:
    batch_id: str
    app_id: str
    manifest_version: int
    window_start: str
    window_end: str
    status: BatchStatus
    before_consent: bool
    created_at: str
    closed_at: str | None = None
    decided_at: str | None = None
    decided_by: str | None = None
    scope: str | None = None
    endpoint: str | None = None
    payload_sha256: str | None = None
    payload_bytes: int | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    batch_id: str
    attempts: int
    next_attempt_at: str
    lease_owner: str | None = None
    lease_expires_at: str | None = None
    last_status: int | None = None
    last_error: str | None = None
    waiting_for: str | None = None


@dataclass(frozen=True)
class DapReportsRecord:
    """The sealed reports of a DAP batch: the framed bytes, their digest, how many there are,
    and how many of them, from the first, the leader has taken."""

    batch_id: str
    body: bytes
    sha256: str
    reports: int
    uploaded: int
    sealed_at: str


_APP_COLUMNS = tuple(f.name for f in fields(AppRecord))
_DELIVERY_COLUMNS = tuple(f.name for f in fields(DeliveryRecord))
_DELIVERY_SELECT = f"SELECT {', '.join('d.' + c for c in _DELIVERY_COLUMNS)} FROM deliveries d"
_BATCH_COLUMNS = tuple(f.name for f in fields(BatchRecord))
_BATCH_SELECT = f"SELECT {', '.join(_BATCH_COLUMNS)} FROM batches"
_APP_STATUS, _APP_POLICY = _APP_COLUMNS.index("status"), _APP_COLUMNS.index("policy")
_BATCH_STATUS = _BATCH_COLUMNS.index("status")


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        # One connection per thread. A thread's connection is closed when the thread's
        # local storage goes (the thread ended), whoever created the thread (Python,
        # waitress or Qt's pool); close() closes whatever is left.
        self._connections: dict[int, sqlite3.Connection] = {}
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, path: Path) -> Store:
        store = cls(path)
        store._prepare()
        return store

    # -- connections and transactions ------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed transaction survives the process being
            # killed; only an OS crash or power cut can lose the last commits.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"Cannot open the database {self.path}: {exc}. If it is damaged, move it aside and start again."
            ) from None
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            if self._closed:
                raise StoreError("Telemetry Tray is shutting down; the database is closed.")
            slot = _Slot(self._connect())
            with self._lock:
                self._connections[id(slot)] = slot.conn
            weakref.finalize(slot, self._forget, id(slot), slot.conn)
            self._local.slot = slot
            self._local.depth = 0
        return slot.conn

    def _forget(self, key: int, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._connections.pop(key, None)
        conn.close()

    def close(self) -> None:
        """Close this thread's connection and refuse further use. Other threads'
        connections are closed as those threads end: closing a connection another
        thread may be using at this moment would crash the process."""
        self._closed = True
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is not None:
            self._local.slot = None
            with self._lock:
                self._connections.pop(id(slot), None)
            slot.conn.close()

    @contextmanager
    def write(self) -> Iterator[None]:
        """One write transaction; nested calls join the outer one."""
        with self._transaction("BEGIN IMMEDIATE"):
            yield

    @property
    def in_write(self) -> bool:
        """Whether this thread is inside a write transaction."""
        return bool(getattr(self._local, "depth", 0)) and self._local.kind != "BEGIN"

    @contextmanager
    def read(self) -> Iterator[None]:
        """A consistent snapshot for several reads."""
        with self._transaction("BEGIN"):
            yield

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[None]:
        conn = self._conn
        if self._local.depth:
            if begin != "BEGIN" and self._local.kind == "BEGIN":
                # Upgrading a read snapshot to a write can fail busy with no retry.
                raise RuntimeError("a write transaction cannot start inside a read transaction")
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        # Threads of this process queue on a lock for writes: SQLite's own busy handler
        # would make them sleep in steps instead of waking when the writer is done.
        lock = _write_lock(self.path) if begin != "BEGIN" else None
        if lock is not None and not lock.acquire(timeout=BUSY_TIMEOUT_S):
            raise StoreError(f"The database is busy: a write waited over {BUSY_TIMEOUT_S:.0f} s. Try again.")
        try:
            try:
                conn.execute(begin)
            except sqlite3.Error as exc:
                raise _store_error(exc, self.path) from None
            self._local.depth = 1
            self._local.kind = begin
            try:
                yield
            except BaseException:
                self._local.depth = 0
                _rollback(conn)
                raise
            self._local.depth = 0
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise _store_error(exc, self.path) from None
        finally:
            if lock is not None:
                lock.release()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc

    # -- schema ----------------------------------------------------------------------

    def _prepare(self) -> None:
        self._refuse_foreign()
        try:
            ensure_private_file(self.path)
        except OSError as exc:
            raise StoreError(
                f"Cannot use the database file {self.path}: {exc.strerror or exc}. "
                "If it is a symbolic link, replace it with the file itself."
            ) from None
        version = self.schema_version()
        if 0 < version < LATEST:
            self.backup(self.path.with_name(f"{self.path.name}.v{version}.bak"))
        self.migrate()

    def _refuse_foreign(self) -> None:
        """Look (read-only) at an existing file before changing anything about it."""
        if self.path.is_symlink():
            raise StoreError(f"The database {self.path} is a symbolic link; replace it with the file itself.")
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        try:
            probe = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True)
            try:
                version = int(probe.execute("PRAGMA user_version").fetchone()[0])
                tables = int(probe.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
                # A damaged file is refused before anything writes to it (tens of ms for 25 MB).
                damage = [str(row[0]) for row in probe.execute("PRAGMA quick_check(5)").fetchall()]
            finally:
                probe.close()
        except sqlite3.DatabaseError as exc:
            if any(word in str(exc) for word in ("malformed", "locked", "busy")):
                raise _store_error(exc, self.path) from None  # damaged, or busy: not someone else's file
            raise StoreError(
                f"{self.path} is not a Telemetry Tray database ({exc}). Move it aside to start afresh; "
                "nothing in it was changed."
            ) from None
        if damage != ["ok"]:
            found = "; ".join(damage)
            raise _store_error(sqlite3.DatabaseError(f"database disk image is malformed: {found}"), self.path)
        if version > LATEST:
            raise NewerDatabaseError(
                f"The database {self.path} was written by a newer Telemetry Tray (schema {version}; "
                f"this version knows up to {LATEST}). Install the newer version, or set "
                "TELEMETRY_TRAY_HOME to another folder."
            )
        if version == 0 and tables:
            raise StoreError(
                f"{self.path} is an SQLite database of another program. "
                "Move it aside; Telemetry Tray will not touch it."
            )

    def schema_version(self) -> int:
        version: int = self._execute("PRAGMA user_version").fetchone()[0]
        return version

    def migrate(self, target: int | None = None) -> None:
        """Apply the missing migrations up to ``target`` (the latest), each in its own transaction."""
        target = LATEST if target is None else target
        while True:
            with self.write():
                # Read the version inside the write lock: another process may have migrated.
                current = self.schema_version()
                if current >= target:
                    return
                for statement in MIGRATIONS[current]:
                    self._execute(statement)
                fill = FILLS.get(current + 1)
                if fill is not None:
                    fill(self._execute)
                self._execute(f"PRAGMA user_version = {current + 1}")

    def backup(self, dest: Path) -> Path:
        """A consistent copy of the database (WAL included), mode 0600. It is written under
        a temporary name and renamed once whole: a crash mid-copy must not leave an empty or
        partial file under the backup's name."""
        if dest.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            dest = dest.with_name(f"{dest.name}.{stamp}")
        partial = dest.with_name(f".{dest.name}.partial")
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            leftover.unlink(missing_ok=True)  # a copy an earlier crash cut short
        ensure_private_file(partial)
        target = sqlite3.connect(partial)
        try:
            self._conn.backup(target)
        finally:
            target.close()
        # Durable: the migration that follows is on the disk once SQLite commits it, so
        # the copy of the database before it must be too (the file and its new name).
        put_in_place(partial, dest, durable=True)
        return dest

    # -- apps and manifests ----------------------------------------------------------

    def app(self, app_id: str) -> AppRecord | None:
        row = self._execute(f"SELECT {', '.join(_APP_COLUMNS)} FROM apps WHERE app_id = ?", (app_id,)).fetchone()
        return _app(row) if row else None

    def apps(self) -> list[AppRecord]:
        rows = self._execute(f"SELECT {', '.join(_APP_COLUMNS)} FROM apps ORDER BY app_id").fetchall()
        return [_app(row) for row in rows]

    def app_by_token_hash(self, token_hash: str) -> AppRecord | None:
        row = self._execute(
            f"SELECT {', '.join(_APP_COLUMNS)} FROM apps WHERE token_hash = ?", (token_hash,)
        ).fetchone()
        return _app(row) if row else None

    def insert_app(self, record: AppRecord) -> None:
        marks = ", ".join("?" for _ in _APP_COLUMNS)
        self._execute(f"INSERT INTO apps ({', '.join(_APP_COLUMNS)}) VALUES ({marks})", _values(record))

    def update_app(self, app_id: str, **changes: object) -> None:
        self._update("apps", "app_id", app_id, _APP_COLUMNS, changes)

    def delete_app(self, app_id: str) -> None:
        """The app row; its manifests, batches, reports and deliveries go with it (cascade)."""
        self._execute("DELETE FROM apps WHERE app_id = ?", (app_id,))

    def insert_manifest(self, app_id: str, version: int, body: str, at: str) -> None:
        self._execute(
            "INSERT INTO manifests (app_id, version, body, registered_at) VALUES (?, ?, ?, ?)",
            (app_id, version, body, at),
        )

    def manifest_body(self, app_id: str, version: int) -> str | None:
        row = self._execute("SELECT body FROM manifests WHERE app_id = ? AND version = ?", (app_id, version)).fetchone()
        return str(row[0]) if row else None

    def manifest_versions(self, app_id: str) -> list[int]:
        rows = self._execute("SELECT version FROM manifests WHERE app_id = ? ORDER BY version", (app_id,)).fetchall()
        return [int(row[0]) for row in rows]

    # -- batches ---------------------------------------------------------------------

    def batch(self, batch_id: str) -> BatchRecord | None:
        row = self._execute(f"{_BATCH_SELECT} WHERE batch_id = ?", (batch_id,)).fetchone()
        return _batch(row) if row else None

    def batches_with_prefix(self, prefix: str, limit: int = 2) -> list[BatchRecord]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._execute(
            f"{_BATCH_SELECT} WHERE batch_id LIKE ? ESCAPE '\\' LIMIT ?", (escaped + "%", limit)
        ).fetchall()
        return [_batch(row) for row in rows]

    def open_batch(self, app_id: str) -> BatchRecord | None:
        row = self._execute(f"{_BATCH_SELECT} WHERE app_id = ? AND status = 'open'", (app_id,)).fetchone()
        return _batch(row) if row else None

    def batches(
        self,
        statuses: Iterable[str],
        *,
        app_id: str | None = None,
        window_end_before: str | None = None,
        decided_before: str | None = None,
        with_payload: bool | None = None,
    ) -> list[BatchRecord]:
        wanted = list(statuses)
        sql = f"{_BATCH_SELECT} WHERE status IN ({', '.join('?' for _ in wanted)})"
        params: list[object] = list(wanted)
        if app_id is not None:
            sql += " AND app_id = ?"
            params.append(app_id)
        if window_end_before is not None:
            sql += " AND window_end < ?"
            params.append(window_end_before)
        if decided_before is not None:
            sql += " AND decided_at < ?"
            params.append(decided_before)
        if with_payload is not None:
            sql += " AND payload IS NOT NULL" if with_payload else " AND payload IS NULL"
        sql += " ORDER BY app_id, window_start, created_at"
        return [_batch(row) for row in self._execute(sql, params).fetchall()]

    def insert_batch(self, record: BatchRecord, *, noise_seed: bytes) -> None:
        """A new batch, with the secret its noise is drawn from (kept out of BatchRecord, so
        that no view, log or repr of a batch ever holds it)."""
        columns = (*_BATCH_COLUMNS, "noise_seed")
        marks = ", ".join("?" for _ in columns)
        self._execute(f"INSERT INTO batches ({', '.join(columns)}) VALUES ({marks})", (*_values(record), noise_seed))

    def noise_seed(self, batch_id: str) -> bytes | None:
        """The batch's secret seed for noise; None once its reports are gone (or for a batch
        decided before seeds existed)."""
        row = self._execute("SELECT noise_seed FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    def update_batch(self, batch_id: str, **changes: object) -> None:
        self._update("batches", "batch_id", batch_id, (*_BATCH_COLUMNS, "payload"), changes)

    def payload(self, batch_id: str) -> bytes | None:
        row = self._execute("SELECT payload FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    def dap_reports(self, batch_id: str) -> DapReportsRecord | None:
        """A DAP batch's sealed reports (migration 6), if the forwarder made them."""
        row = self._execute(
            "SELECT batch_id, body, sha256, reports, uploaded, sealed_at FROM dap_reports WHERE batch_id = ?",
            (batch_id,),
        ).fetchone()
        return DapReportsRecord(row[0], bytes(row[1]), *row[2:]) if row else None

    def put_dap_reports(self, record: DapReportsRecord) -> None:
        self._execute(
            "INSERT OR REPLACE INTO dap_reports (batch_id, body, sha256, reports, uploaded, sealed_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (record.batch_id, record.body, record.sha256, record.reports, record.uploaded, record.sealed_at),
        )

    def set_dap_uploaded(self, batch_id: str, uploaded: int) -> None:
        self._execute("UPDATE dap_reports SET uploaded = ? WHERE batch_id = ?", (uploaded, batch_id))

    def earliest_window_end(self, statuses: Iterable[str]) -> str | None:
        wanted = list(statuses)
        marks = ", ".join("?" for _ in wanted)
        row = self._execute(f"SELECT min(window_end) FROM batches WHERE status IN ({marks})", wanted).fetchone()
        return str(row[0]) if row and row[0] is not None else None

    def last_manifest_version(self, app_id: str, statuses: Iterable[str]) -> int | None:
        wanted = list(statuses)
        marks = ", ".join("?" for _ in wanted)
        row = self._execute(
            f"SELECT max(manifest_version) FROM batches WHERE app_id = ? AND status IN ({marks})",
            (app_id, *wanted),
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    # -- deliveries ------------------------------------------------------------------

    def insert_delivery(self, batch_id: str, next_attempt_at: str) -> None:
        self._execute("INSERT INTO deliveries (batch_id, next_attempt_at) VALUES (?, ?)", (batch_id, next_attempt_at))

    def delivery(self, batch_id: str) -> DeliveryRecord | None:
        row = self._execute(f"{_DELIVERY_SELECT} WHERE d.batch_id = ?", (batch_id,)).fetchone()
        return DeliveryRecord(*row) if row else None

    def update_delivery(self, batch_id: str, **changes: object) -> None:
        self._update("deliveries", "batch_id", batch_id, _DELIVERY_COLUMNS, changes)

    def due_deliveries(self, now: str, limit: int) -> list[DeliveryRecord]:
        """Deliveries of approved batches that are due and not claimed by a live lease."""
        rows = self._execute(
            f"{_DELIVERY_SELECT} JOIN batches b ON b.batch_id = d.batch_id "
            "WHERE b.status = 'approved' AND d.waiting_for IS NULL AND d.next_attempt_at <= ? "
            "AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= ?) "
            "ORDER BY d.next_attempt_at LIMIT ?",
            (now, now, limit),
        ).fetchall()
        return [DeliveryRecord(*row) for row in rows]

    def open_deliveries(self, app_id: str | None = None) -> list[DeliveryRecord]:
        """Deliveries of batches still approved (due, scheduled, in flight or waiting)."""
        sql = f"{_DELIVERY_SELECT} JOIN batches b ON b.batch_id = d.batch_id WHERE b.status = 'approved'"
        params: list[object] = []
        if app_id is not None:
            sql += " AND b.app_id = ?"
            params.append(app_id)
        return [DeliveryRecord(*row) for row in self._execute(sql + " ORDER BY d.next_attempt_at", params)]

    # -- reports ---------------------------------------------------------------------

    def insert_reports(self, batch_id: str, received_at: str, bodies: Iterable[str]) -> None:
        try:
            self._conn.executemany(
                "INSERT INTO reports (batch_id, received_at, body) VALUES (?, ?, ?)",
                ((batch_id, received_at, body) for body in bodies),
            )
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc

    def report_bodies(self, batch_id: str) -> list[str]:
        """A batch's report bodies (JSON text) in the order they arrived."""
        try:  # fetching reads most of the pages: where a damaged file shows
            rows = self._conn.execute("SELECT body FROM reports WHERE batch_id = ? ORDER BY id", (batch_id,)).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc
        return list(map(itemgetter(0), rows))

    def report_count(self, batch_id: str) -> int:
        count: int = self._execute("SELECT count(*) FROM reports WHERE batch_id = ?", (batch_id,)).fetchone()[0]
        return count

    def report_stamp(self, batch_id: str) -> tuple[int, int]:
        """How many reports a batch has and its newest report's id: reports are only ever
        added to a batch or all deleted, so equal stamps mean the same reports."""
        count, newest = self._execute(
            "SELECT count(*), coalesce(max(id), 0) FROM reports WHERE batch_id = ?", (batch_id,)
        ).fetchone()
        return int(count), int(newest)

    def delete_reports(self, batch_id: str) -> int:
        """Delete a batch's reports, and the seed their noise was drawn from: with the
        reports gone (the payload stored, or nothing to send) it can only help undo noise."""
        self._execute("UPDATE batches SET noise_seed = NULL WHERE batch_id = ?", (batch_id,))
        return self._execute("DELETE FROM reports WHERE batch_id = ?", (batch_id,)).rowcount

    def add_dropped(self, batch_id: str, counts: dict[str, int]) -> None:
        for name, count in counts.items():
            self._execute(
                "INSERT INTO dropped_fields (batch_id, field, count) VALUES (?, ?, ?) "
                "ON CONFLICT (batch_id, field) DO UPDATE SET count = count + excluded.count",
                (batch_id, name, count),
            )

    def dropped(self, batch_id: str) -> dict[str, int]:
        rows = self._execute(
            "SELECT field, count FROM dropped_fields WHERE batch_id = ? ORDER BY field", (batch_id,)
        ).fetchall()
        return {str(name): int(count) for name, count in rows}

    # -- receipts --------------------------------------------------------------------

    def last_receipt(self) -> Receipt | None:
        row = self._execute(f"{_RECEIPT_SELECT} ORDER BY seq DESC LIMIT 1").fetchone()
        return _receipt(row) if row else None

    def insert_receipt(self, receipt: Receipt) -> None:
        self._execute(
            "INSERT INTO receipts (seq, at, batch_id, app_id, action, detail, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                receipt.seq,
                receipt.at,
                receipt.batch_id,
                receipt.app_id,
                receipt.action,
                receipt.detail_json,
                receipt.prev_hash,
                receipt.hash,
            ),
        )

    def count_receipts(self, action: str, since: str) -> int:
        count: int = self._execute(
            "SELECT count(*) FROM receipts WHERE action = ? AND at >= ?", (action, since)
        ).fetchone()[0]
        return count

    def receipts(self, *, app_id: str | None = None, batch_id: str | None = None) -> list[Receipt]:
        sql, params = _RECEIPT_SELECT, []
        conditions = []
        if app_id is not None:
            conditions.append("app_id = ?")
            params.append(app_id)
        if batch_id is not None:
            conditions.append("batch_id = ?")
            params.append(batch_id)
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        return [_receipt(row) for row in self._execute(sql + " ORDER BY seq", params).fetchall()]

    # -- settings --------------------------------------------------------------------

    def setting(self, key: str) -> str | None:
        row = self._execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    # -- request keys ----------------------------------------------------------------

    def ingest_key(self, app_id: str, key: str) -> tuple[str, str] | None:
        """The request digest and result stored under an app's Idempotency-Key, if any."""
        row = self._execute(
            "SELECT request_sha256, result FROM ingest_keys WHERE app_id = ? AND key = ?", (app_id, key)
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def insert_ingest_key(self, app_id: str, key: str, request_sha256: str, result: str, at: str) -> None:
        self._execute(
            "INSERT INTO ingest_keys (app_id, key, request_sha256, result, at) VALUES (?, ?, ?, ?, ?)",
            (app_id, key, request_sha256, result, at),
        )

    def purge_ingest_keys(self, before: str) -> int:
        return self._execute("DELETE FROM ingest_keys WHERE at < ?", (before,)).rowcount

    def set_setting(self, key: str, value: str) -> None:
        self._execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- helpers ---------------------------------------------------------------------

    def _update(self, table: str, key: str, key_value: str, columns: Sequence[str], changes: dict[str, object]) -> None:
        unknown = set(changes) - set(columns)
        if unknown:
            raise ValueError(f"unknown columns for {table}: {sorted(unknown)}")
        if not changes:
            return
        assignments = ", ".join(f"{name} = ?" for name in changes)
        self._execute(f"UPDATE {table} SET {assignments} WHERE {key} = ?", (*changes.values(), key_value))


_RECEIPT_SELECT = "SELECT seq, at, batch_id, app_id, action, detail, prev_hash, hash FROM receipts"


_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: Path) -> threading.Lock:
    """One lock per database file in this process, shared by all its Store objects."""
    key = str(path.resolve())
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may already have rolled back by itself (e.g. disk full); keep the first error.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _receipt(row: Sequence[Any]) -> Receipt:
    seq, at, batch_id, app_id, action, detail, prev_hash, digest = row
    # An unknown action (a row edited by hand) stays a plain string: verify_chain names it.
    known = Action(action) if action in Action._value2member_map_ else action
    return Receipt(int(seq), at, batch_id, app_id, known, json.loads(detail), prev_hash, digest)


def _app(row: Sequence[Any]) -> AppRecord:
    values = list(row)
    values[_APP_STATUS] = AppStatus(values[_APP_STATUS])
    values[_APP_POLICY] = Policy(values[_APP_POLICY])
    return AppRecord(*values)


def _batch(row: Sequence[Any]) -> BatchRecord:
    values = list(row)
    values[_BATCH_COLUMNS.index("before_consent")] = bool(values[_BATCH_COLUMNS.index("before_consent")])
    values[_BATCH_STATUS] = BatchStatus(values[_BATCH_STATUS])
    return BatchRecord(*values)


def _values(record: AppRecord | BatchRecord) -> tuple[object, ...]:
    return tuple(getattr(record, f.name) for f in fields(record))


def _store_error(exc: sqlite3.Error, path: Path | None = None) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreError(
            f"The database is busy: another Telemetry Tray process held it for over {BUSY_TIMEOUT_S:.0f} s. Try again."
        )
    if "full" in text:
        return StoreError("The disk is full, so nothing was saved. Free some space and try again.")
    if path is not None and ("malformed" in text or "not a database" in text):
        return StoreError(
            f"The database {path} is damaged ({text}); nothing was changed. Keep the file (it may hold reports "
            f"not yet reviewed) but move it aside, and Telemetry Tray starts with an empty one. A copy from "
            f"before the last upgrade may be beside it ({path.name}.v*.bak)."
        )
    return StoreError(f"The database failed: {text}.")
