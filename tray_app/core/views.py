"""The shapes the broker hands out: what a shell may read of apps, batches and deliveries.

Frozen values with no behaviour but their ``to_obj`` (the ``--json`` and HTTP shapes,
which are contracts: DESIGN.md, "CLI" and "Local ingest HTTP API").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .rules.manifest import Manifest, ManifestChange
from .rules.payload import Payload
from .rules.scope import Scope
from .storage.store import BatchRecord


@dataclass(frozen=True)
class AppInfo:
    app_id: str
    name: str
    vendor: str
    endpoint: str
    status: str
    policy: str
    manifest: Manifest
    scope: Scope

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
    status: str
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
    status: str
    reports: int
    window_start: str
    window_end: str

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
        }


@dataclass(frozen=True)
class ClosedBatch:
    batch_id: str
    app_id: str
    status: str


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
    auth: str
    payload: bytes
    payload_sha256: str
    owner: str


@dataclass(frozen=True)
class DeliveryOutcome:
    batch_id: str
    app_id: str
    outcome: str  # delivered | retrying | failed | waiting for credentials | already <status>
    status: int | None = None
    error: str | None = None
    next_attempt_at: str | None = None


@dataclass(frozen=True)
class Overview:
    apps: int
    awaiting_consent: int
    open: int
    held: int
    pending: int
    approved: int
    paused_all: bool
    retention_days: int
    spool_dropped: int
    delivering: int
