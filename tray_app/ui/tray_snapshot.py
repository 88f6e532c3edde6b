"""What the tray and its menu show, read from the broker in one go off the UI thread."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import AppInfo, BatchSummary, Broker


@dataclass(frozen=True)
class Snapshot:
    apps: list[AppInfo] = field(default_factory=list)
    batches: list[BatchSummary] = field(default_factory=list)
    paused_all: bool = False
    failed_deliveries: int = 0  # failed for good in the last 24 hours
    waiting_for_credentials: int = 0  # approved batches held: no secret, or no keyring
    ready: bool = False
    problem: str = ""  # e.g. the instance could not start; shown in the menu and tooltip

    @property
    def waiting(self) -> list[BatchSummary]:
        """Batches the person is asked to decide on (not the ones still collecting)."""
        return [b for b in self.batches if b.status == "pending"]

    @property
    def awaiting_consent(self) -> list[AppInfo]:
        return [a for a in self.apps if a.status == "awaiting_consent"]

    def waiting_by_app(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for batch in self.waiting:
            counts[batch.app_id] = counts.get(batch.app_id, 0) + 1
        return counts

    def app_name(self, app_id: str) -> str:
        return next((a.name for a in self.apps if a.app_id == app_id), app_id)

    def summary(self) -> str:
        """The status line, in words: "3 batches waiting from 2 apps"."""
        if self.problem:
            return self.problem
        if not self.ready:
            return "Starting…"
        waiting, apps = len(self.waiting), len(self.waiting_by_app())
        parts = []
        if waiting:
            parts.append(f"{_count(waiting, 'batch', 'batches')} waiting from {_count(apps, 'app', 'apps')}")
        if self.awaiting_consent:
            parts.append(f"{_count(len(self.awaiting_consent), 'new app', 'new apps')} asking to send")
        if self.failed_deliveries:
            parts.append(f"{_count(self.failed_deliveries, 'delivery', 'deliveries')} failed")
        if self.waiting_for_credentials:
            parts.append(f"{_count(self.waiting_for_credentials, 'batch', 'batches')} waiting for credentials")
        if not parts:
            parts.append("Nothing is waiting for you")
        if self.paused_all:
            parts.append("all telemetry paused")
        return "; ".join(parts)


def take_snapshot(broker: Broker) -> Snapshot:
    failed = broker.failures_since(hours=24)
    held = sum(1 for d in broker.open_deliveries() if d.waiting_for == "credentials")
    return Snapshot(
        apps=broker.apps(),
        batches=broker.pending(),
        paused_all=broker.paused_all,
        failed_deliveries=failed,
        waiting_for_credentials=held,
        ready=True,
    )


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
