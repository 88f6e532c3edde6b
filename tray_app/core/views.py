"""The shapes the broker hands out: what a shell may read of apps, batches and deliveries.

Frozen values with no behaviour but their ``to_obj`` (the ``--json`` and HTTP shapes,
which are contracts: DESIGN.md, "CLI" and "Local ingest HTTP API").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from .rules.batch_summary import Disclosure
from .rules.clock import from_iso
from .rules.consent import AppStatus, BatchStatus, Policy
from .rules.delivery_words import DeliveryWords, delivery_words
from .rules.manifest import Auth, Manifest, ManifestChange, WireFormat
from .rules.payload import Payload
from .rules.reports import ReportCheck
from .rules.retry import Outcome, outcome_text
from .rules.scope import Scope
from .rules.vendor_body import destination
from .storage.store import AppRecord, BatchRecord


@dataclass(frozen=True)
class AppInfo:
    app_id: str
    name: str
    vendor: str
    endpoint: str
    status: AppStatus
    policy: Policy
    manifest: Manifest
    scope: Scope

    @classmethod
    def of(cls, record: AppRecord, manifest: Manifest) -> AppInfo:
        """An app as its row says, with its current ``manifest``."""
        scope = Scope.from_obj(json.loads(record.scope))
        return cls(
            record.app_id, record.name, record.vendor, record.endpoint, record.status, record.policy, manifest, scope
        )

    def to_obj(self) -> dict[str, Any]:
        """The shape of ``apps --json``."""
        return {
            "app_id": self.app_id,
            "name": self.name,
            "vendor": self.vendor,
            "endpoint": self.endpoint,
            "status": self.status,
            "policy": self.policy,
        }


@dataclass(frozen=True)
class Registration:
    app_id: str
    token: str
    status: AppStatus
    created: bool
    change: ManifestChange | None = None

    @property
    def updated(self) -> bool:
        """Whether a new manifest version was stored."""
        return self.change is not None


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: list[tuple[int, str]]
    dropped_fields: list[str]
    batch_id: str | None = None
    repeated: bool = False  # the answer to an earlier request with the same key: nothing new stored

    @classmethod
    def of(cls, check: ReportCheck, batch_id: str | None) -> IngestResult:
        return cls(len(check.accepted), check.rejected, check.dropped_fields, batch_id)

    @classmethod
    def repeat(cls, answer: str) -> IngestResult:
        """The result remembered under an Idempotency-Key (:meth:`answer`), given again."""
        obj = json.loads(answer)
        rejected = [(int(r["index"]), str(r["error"])) for r in obj["rejected"]]
        return cls(int(obj["accepted"]), rejected, list(obj["dropped_fields"]), None, repeated=True)

    def answer(self) -> str:
        """The HTTP answer as compact JSON, as it is remembered under an Idempotency-Key."""
        return json.dumps(self.to_obj(), separators=(",", ":"))

    def to_obj(self) -> dict[str, Any]:
        """The shape of the HTTP 202 answer."""
        return {
            "accepted": self.accepted,
            "rejected": [{"index": index, "error": error} for index, error in self.rejected],
            "dropped_fields": self.dropped_fields,
        }


@dataclass(frozen=True)
class BatchSummary:
    batch_id: str
    app_id: str
    status: BatchStatus
    reports: int
    window_start: str
    window_end: str
    # When its first report came and when it closed (None: still collecting), so batches of
    # one window (a new manifest version, *close now*) can be told apart. Not in the JSON.
    created_at: str = ""
    closed_at: str | None = None

    @classmethod
    def of(cls, batch: BatchRecord, reports: int) -> BatchSummary:
        return cls(
            batch.batch_id, batch.app_id, batch.status, reports, batch.window_start, batch.window_end,
            batch.created_at, batch.closed_at,
        )  # fmt: skip

    def to_obj(self) -> dict[str, Any]:
        """The shape of one ``pending --json`` entry."""
        return {
            "batch_id": self.batch_id,
            "app_id": self.app_id,
            "status": self.status,
            "reports": self.reports,
            "window_start": self.window_start,
            "window_end": self.window_end,
        }


@dataclass(frozen=True)
class BatchView:
    """Everything a person needs to decide on a batch, and the exact payload."""

    batch: BatchRecord
    app: AppInfo
    manifest: Manifest
    reports: int
    scope: Scope | None
    payload: Payload | None
    dropped: dict[str, int]
    change: ManifestChange | None
    # What the scoped batch says (rules/batch_summary.py); None when nothing is (or was) sent.
    summary: Disclosure | None = None

    @property
    def destination(self) -> str:
        """Where the bytes go (or went): for ``format = "otlp"`` the collector's signal URL."""
        if self.batch.endpoint is not None:
            return self.batch.endpoint
        return destination(self.manifest, self.scope) if self.scope is not None else self.manifest.endpoint

    def to_obj(self) -> dict[str, Any]:
        """The shape of ``show --json``."""
        return {
            "batch_id": self.batch.batch_id,
            "app_id": self.batch.app_id,
            "status": self.batch.status,
            "scope": self.scope.to_obj() if self.scope else None,
            "payload": self.payload.obj() if self.payload else None,
            "payload_sha256": self.payload.sha256 if self.payload else None,
            "payload_bytes": self.payload.size if self.payload else None,
            "summary": self.summary.to_obj() if self.summary is not None else None,
        }


@dataclass(frozen=True)
class ClosedBatch:
    batch_id: str
    app_id: str
    status: BatchStatus


@dataclass(frozen=True)
class RetentionSweep:
    expired: list[str]
    purged: list[str]


@dataclass(frozen=True)
class Claim:
    """An approved batch claimed for sending: the exact bytes and where they go."""

    batch_id: str
    app_id: str
    endpoint: str
    auth: Auth
    payload: bytes
    payload_sha256: str
    owner: str
    format: WireFormat = WireFormat.TELEMETRY_TRAY  # what the vendor speaks: how to read its answer


@dataclass(frozen=True)
class DeliveryOutcome:
    batch_id: str
    app_id: str
    outcome: Outcome
    status: int | None = None  # the vendor's HTTP status, if it answered
    error: str | None = None
    next_attempt_at: str | None = None
    batch_status: BatchStatus | None = None  # with Outcome.ALREADY: what the batch became (None: gone)

    @property
    def text(self) -> str:
        """The outcome in words, as the CLI prints it ("delivered", "already discarded")."""
        return outcome_text(self.outcome, self.batch_status)

    def to_obj(self) -> dict[str, Any]:
        """The shape of one ``deliver --json`` outcome."""
        return {
            "batch_id": self.batch_id,
            "app_id": self.app_id,
            "outcome": self.text,
            "status": self.status,
            "error": self.error,
            "next_attempt_at": self.next_attempt_at,
        }


@dataclass(frozen=True)
class OpenDelivery:
    """An approved batch not delivered yet: what its delivery row says, with the batch's
    app and destination, read in one go (:meth:`Broker.undelivered`)."""

    batch_id: str
    app_id: str
    app_name: str
    endpoint: str
    attempts: int
    next_attempt_at: str
    last_status: int | None
    last_error: str | None
    waiting_for: str | None  # "credentials" while held for want of a secret
    in_flight: bool  # a sender holds a live lease: its bytes may be on the wire
    approved_at: str | None
    payload_bytes: int | None
    window_start: str
    window_end: str

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or self.endpoint

    def words(self, now: datetime, *, paused: bool = False) -> DeliveryWords:
        """Why it has not got through and what can be done, in words, at ``now``."""
        return delivery_words(
            app_name=self.app_name, host=self.host, attempts=self.attempts, last_status=self.last_status,
            last_error=self.last_error, waiting_for=self.waiting_for, next_attempt_at=self.next_attempt_at,
            in_flight=self.in_flight, now=now, paused=paused,
        )  # fmt: skip

    def to_obj(self) -> dict[str, Any]:
        """The shape of one ``deliver --json`` ``undelivered`` entry, with more beside it."""
        return {
            "batch_id": self.batch_id,
            "app_id": self.app_id,
            "next_attempt_at": self.next_attempt_at,
            "waiting_for": self.waiting_for,
            "last_error": self.last_error,
            "last_status": self.last_status,
            "attempts": self.attempts,
            "in_flight": self.in_flight,
        }


@dataclass(frozen=True)
class Overview:
    """The state at a glance, read in one go: what ``status`` prints and what the tray and
    its menu show (the counts, who asks, what waits, what went wrong)."""

    apps: int
    awaiting_consent: int
    open: int
    held: int
    pending: int
    approved: int
    paused_all: bool
    retention_days: int
    spool_dropped: int
    names: dict[str, str]  # every registered app's name, by app id
    asking: tuple[str, ...]  # the apps awaiting consent, by app id
    waiting: dict[str, tuple[str, ...]]  # the batches waiting for a decision (pending), by app id
    failed_recently: int  # deliveries that failed for good in the last 24 hours
    waiting_for_credentials: int  # approved batches held: no secret, or no keyring
    # Approved batches not delivered yet (due, in flight, retrying or waiting), and when
    # this overview was read (ISO 8601, by the broker's clock: what their words count from).
    undelivered: tuple[OpenDelivery, ...] = ()
    at: str = ""

    def stuck(self) -> tuple[OpenDelivery, ...]:
        """The undelivered batches that need the person: retrying, or waiting for credentials."""
        if not self.at:
            return ()
        now = from_iso(self.at)
        return tuple(d for d in self.undelivered if d.words(now).stuck)

    def name(self, app_id: str) -> str:
        """An app's name (its id once it is gone)."""
        return self.names.get(app_id, app_id)
