"""Numbered schema migrations on ``PRAGMA user_version``.

``MIGRATIONS[n - 1]`` takes a database from version ``n - 1`` to ``n``. Each runs in
one transaction together with the ``user_version`` bump, so a crash leaves the
database at the old version or the new one, never between. Never edit a migration
that has shipped: add the next one.

A migration that must fill rows with something SQL cannot make has a step in
:data:`FILLS` too, run after its statements in the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# What a fill step is given: the store's execute, inside the migration's transaction.
Execute = Callable[[str, Sequence[Any]], Any]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: apps, their manifest versions, batches of reports, receipts, settings.
    (
        """CREATE TABLE apps (
            app_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            vendor TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            manifest_version INTEGER NOT NULL,
            status TEXT NOT NULL,
            policy TEXT NOT NULL,
            scope TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            registered_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE manifests (
            app_id TEXT NOT NULL REFERENCES apps(app_id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            body TEXT NOT NULL,
            registered_at TEXT NOT NULL,
            PRIMARY KEY (app_id, version)
        )""",
        """CREATE TABLE batches (
            batch_id TEXT PRIMARY KEY,
            app_id TEXT NOT NULL REFERENCES apps(app_id) ON DELETE CASCADE,
            manifest_version INTEGER NOT NULL,
            window_start TEXT NOT NULL,
            window_end TEXT NOT NULL,
            status TEXT NOT NULL,
            before_consent INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            closed_at TEXT,
            decided_at TEXT,
            decided_by TEXT,
            scope TEXT,
            endpoint TEXT,
            payload BLOB,
            payload_sha256 TEXT,
            payload_bytes INTEGER
        )""",
        "CREATE UNIQUE INDEX batches_one_open ON batches(app_id) WHERE status = 'open'",
        "CREATE INDEX batches_by_status ON batches(status, window_end)",
        """CREATE TABLE reports (
            id INTEGER PRIMARY KEY,
            batch_id TEXT NOT NULL REFERENCES batches(batch_id) ON DELETE CASCADE,
            received_at TEXT NOT NULL,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX reports_by_batch ON reports(batch_id)",
        """CREATE TABLE dropped_fields (
            batch_id TEXT NOT NULL REFERENCES batches(batch_id) ON DELETE CASCADE,
            field TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (batch_id, field)
        )""",
        """CREATE TABLE receipts (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            batch_id TEXT NOT NULL,
            app_id TEXT NOT NULL,
            action TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX receipts_by_app ON receipts(app_id, seq)",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    # 2: deliveries of approved batches: attempts, schedule, the lease that claims one.
    (
        """CREATE TABLE deliveries (
            batch_id TEXT PRIMARY KEY REFERENCES batches(batch_id) ON DELETE CASCADE,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            lease_owner TEXT,
            lease_expires_at TEXT,
            last_status INTEGER,
            last_error TEXT,
            waiting_for TEXT
        )""",
        "CREATE INDEX deliveries_due ON deliveries(next_attempt_at)",
        # Batches approved under schema 1 were never sent: they are due now.
        """INSERT INTO deliveries (batch_id, next_attempt_at)
            SELECT batch_id, coalesce(decided_at, created_at) FROM batches WHERE status = 'approved'""",
    ),
    # 3: the Idempotency-Key of each report request for a while, so a request sent
    # again (its answer was lost, or it went to the spool too) is stored once.
    (
        """CREATE TABLE ingest_keys (
            app_id TEXT NOT NULL REFERENCES apps(app_id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            request_sha256 TEXT NOT NULL,
            result TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (app_id, key)
        ) WITHOUT ROWID""",
        "CREATE INDEX ingest_keys_by_time ON ingest_keys(at)",
    ),
    # 4: receipts are kept for good, so the lookups by batch (a decided batch's report
    # count, retention) and by action and time (recent failures, every UI refresh)
    # must not scan them all.
    (
        "CREATE INDEX receipts_by_batch ON receipts(batch_id, seq)",
        "CREATE INDEX receipts_by_action ON receipts(action, at)",
    ),
    # 5: each batch's secret seed, from which the noise of its scopes is drawn (rules/noise.py),
    # made with the batch and cleared with its reports once its payload is stored. Batches
    # still undecided get theirs in FILLS below.
    ("ALTER TABLE batches ADD COLUMN noise_seed BLOB",),
    # 6: the sealed DAP-09 reports of an approved format = "dap" batch (rules/dap_batch.py's
    # framing), stored by the forwarder before its first upload, and how many of them (from the
    # first) the leader has taken. They go when the batch's payload goes (withdrawn, purged).
    (
        """CREATE TABLE dap_reports (
            batch_id TEXT PRIMARY KEY REFERENCES batches(batch_id) ON DELETE CASCADE,
            body BLOB NOT NULL,
            sha256 TEXT NOT NULL,
            reports INTEGER NOT NULL,
            uploaded INTEGER NOT NULL DEFAULT 0,
            sealed_at TEXT NOT NULL
        )""",
        """CREATE TRIGGER dap_reports_go_with_payload AFTER UPDATE OF payload ON batches
            WHEN NEW.payload IS NULL BEGIN DELETE FROM dap_reports WHERE batch_id = NEW.batch_id; END""",
    ),
)

LATEST = len(MIGRATIONS)


def _seed_undecided_batches(execute: Execute) -> None:
    # In Python, not with SQLite's randomblob(): that is not a cryptographic generator on
    # every platform (on Windows SQLite seeds it from the clock and process id), and a
    # seed that can be guessed lets the vendor undo the noise. Spelt out here (not
    # consent.UNDECIDED, noise.SEED_BYTES) so that this migration never changes once shipped.
    rows = execute("SELECT batch_id FROM batches WHERE status IN ('open', 'held', 'pending')", ())
    for (batch_id,) in rows.fetchall():
        execute("UPDATE batches SET noise_seed = ? WHERE batch_id = ?", (secrets.token_bytes(32), batch_id))


# Steps run after a migration's statements, in its transaction, by the version it makes.
FILLS: Mapping[int, Callable[[Execute], None]] = {5: _seed_undecided_batches}
