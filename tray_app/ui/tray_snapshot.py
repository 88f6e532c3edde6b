"""What the tray and its menu show: the broker's :class:`~tray_app.core.Overview`, read in
one go off the UI thread, in the words of the menu."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import Broker, Overview


@dataclass(frozen=True)
class AppEntry:
    """An app the menu names."""

    app_id: str
    name: str


@dataclass(frozen=True)
class WaitingBatch:
    """A batch waiting for the person's decision."""

    batch_id: str
    app_id: str


@dataclass(frozen=True)
class Snapshot:
    awaiting_consent: tuple[AppEntry, ...] = ()  # new apps asking to send, by app id
    waiting: tuple[WaitingBatch, ...] = ()  # batches to decide on (not the ones still collecting)
    names: dict[str, str] = field(default_factory=dict)
    paused_all: bool = False
    failed_deliveries: int = 0  # failed for good in the last 24 hours
    waiting_for_credentials: int = 0  # approved batches held: no secret, or no keyring
    ready: bool = False
    problem: str = ""  # e.g. the instance could not start; shown in the menu and tooltip

    @classmethod
    def of(cls, overview: Overview) -> Snapshot:
        return cls(
            awaiting_consent=tuple(AppEntry(app_id, overview.name(app_id)) for app_id in overview.asking),
            waiting=tuple(
                WaitingBatch(batch_id, app_id) for app_id, ids in overview.waiting.items() for batch_id in ids
            ),
            names=dict(overview.names),
            paused_all=overview.paused_all,
            failed_deliveries=overview.failed_recently,
            waiting_for_credentials=overview.waiting_for_credentials,
            ready=True,
        )

    def waiting_by_app(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for batch in self.waiting:
            counts[batch.app_id] = counts.get(batch.app_id, 0) + 1
        return counts

    def app_name(self, app_id: str) -> str:
        return self.names.get(app_id, app_id)

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
    """What the tray shows now: one read (:meth:`Broker.overview`); call it off the UI thread."""
    return Snapshot.of(broker.overview())


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
