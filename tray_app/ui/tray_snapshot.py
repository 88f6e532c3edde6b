"""What the tray and its menu show: the broker's :class:`~tray_app.core.Overview`, read in
one go off the UI thread, in the words of the menu."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import Broker, DeliveryStage, DeliveryWords, OpenDelivery, Overview, from_iso


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
class StuckDelivery:
    """An approved batch that does not get through, and why in words."""

    delivery: OpenDelivery
    words: DeliveryWords

    @property
    def line(self) -> str:
        """The menu's line: "PhotoEdit: nothing answers at telemetry.example.org"."""
        return f"{self.delivery.app_name}: {self.words.short}"


# What the tray shows before its first read, or when there is none (the instance did not start).
NOTHING = Overview(
    apps=0, awaiting_consent=0, open=0, held=0, pending=0, approved=0, paused_all=False,
    retention_days=0, spool_dropped=0, names={}, asking=(), waiting={}, failed_recently=0,
    waiting_for_credentials=0,
)  # fmt: skip


@dataclass(frozen=True)
class Snapshot:
    """The broker's overview as the menu words it."""

    overview: Overview = NOTHING
    ready: bool = False  # the overview was read (until then the menu says "Starting…")
    problem: str = ""  # e.g. the instance could not start; shown in the menu and tooltip
    # Why the OpenTelemetry receiver does not serve (its port is taken), as the instance
    # says it; the rest works, so it is a line of its own, not the state of the whole.
    otlp_problem: str = ""

    @classmethod
    def of(cls, overview: Overview, *, otlp_problem: str = "") -> Snapshot:
        return cls(overview, ready=True, otlp_problem=otlp_problem)

    @property
    def otlp_line(self) -> str:
        """The OTLP problem in one menu line: what is wrong, without the remedy (the
        tooltip has all of it); "" when the receiver serves."""
        return self.otlp_problem.split(";", 1)[0].strip()

    def tooltip(self) -> str:
        text = f"Telemetry Tray: {self.summary()}"
        for stuck in self.stuck[:3]:
            text += f"\n{stuck.line}"
        return f"{text}\n{self.otlp_problem}" if self.otlp_problem else text

    @property
    def awaiting_consent(self) -> tuple[AppEntry, ...]:
        """New apps asking to send, by app id."""
        return tuple(AppEntry(app_id, self.overview.name(app_id)) for app_id in self.overview.asking)

    @property
    def waiting(self) -> tuple[WaitingBatch, ...]:
        """Batches to decide on (not the ones still collecting)."""
        return tuple(WaitingBatch(b, app_id) for app_id, ids in self.overview.waiting.items() for b in ids)

    @property
    def stuck(self) -> tuple[StuckDelivery, ...]:
        """Approved batches that do not get through (retrying, or waiting for credentials),
        with their words as of the read."""
        o = self.overview
        if not o.at:
            return ()
        now = from_iso(o.at)
        return tuple(StuckDelivery(d, d.words(now, paused=o.paused_all)) for d in o.stuck())

    def waiting_by_app(self) -> dict[str, int]:
        return {app_id: len(ids) for app_id, ids in self.overview.waiting.items() if ids}

    def app_name(self, app_id: str) -> str:
        return self.overview.name(app_id)

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
        o = self.overview
        if o.failed_recently:
            parts.append(f"{_count(o.failed_recently, 'delivery', 'deliveries')} failed")
        if o.waiting_for_credentials:
            parts.append(f"{_count(o.waiting_for_credentials, 'batch', 'batches')} waiting for credentials")
        retrying = sum(1 for entry in self.stuck if entry.words.stage == DeliveryStage.RETRYING)
        if retrying:
            parts.append(f"{_count(retrying, 'delivery', 'deliveries')} not getting through")
        if not parts:
            parts.append("Nothing is waiting for you")
        if o.open:  # still collecting: the review shows them, with when they close
            parts.append(f"{_count(o.open, 'batch', 'batches')} collecting")
        if o.paused_all:
            parts.append("all telemetry paused")
        return "; ".join(parts)


def take_snapshot(broker: Broker, *, otlp_problem: str = "") -> Snapshot:
    """What the tray shows now: one read (:meth:`Broker.overview`); call it off the UI thread.
    ``otlp_problem``: the running instance's, which is no row of the database."""
    return Snapshot.of(broker.overview(), otlp_problem=otlp_problem)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
