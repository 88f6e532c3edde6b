"""What the tray tells the person unasked (a notification), and how often.

Each kind of news has its own pace: a new app asking for consent (a question only the
person can answer) at most every minute, new batches to review, deliveries that stopped
getting through and deliveries that failed for good at most every ten minutes each. So a
batch notice never silences the next app's question. What a kind could not say yet is
said when its time comes, in one notice ("2 new apps ask…"), unless it is gone by then (the
person answered meanwhile). Nothing here shows anything: :attr:`Notices.notice` says what
to show, and the application decides whether notifications are on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from enum import StrEnum

from PySide6.QtCore import QObject, QTimer, Signal

from .tray_snapshot import Snapshot

__all__ = ["EVERY_S", "Kind", "Notices", "notice_items", "notice_text"]


class Kind(StrEnum):
    APPS = "apps"  # a new app asks to send telemetry
    BATCHES = "batches"  # batches wait for the person's decision
    STUCK = "stuck"  # an approved batch does not get through
    FAILED = "failed"  # a vendor refused a batch for good


EVERY_S: Mapping[Kind, float] = {Kind.APPS: 60.0, Kind.BATCHES: 600.0, Kind.STUCK: 600.0, Kind.FAILED: 600.0}


def notice_items(snapshot: Snapshot) -> dict[Kind, dict[str, str]]:
    """What each kind could tell about ``snapshot``: a key per thing (an app, a batch) with
    the words naming it."""
    return {
        Kind.APPS: {a.app_id: a.name for a in snapshot.awaiting_consent},
        Kind.BATCHES: {b.batch_id: snapshot.app_name(b.app_id) for b in snapshot.waiting},
        Kind.STUCK: {s.delivery.batch_id: s.line for s in snapshot.stuck},
        Kind.FAILED: {f"failed:{n}": "" for n in range(snapshot.overview.failed_recently)},
    }


def _names(names: list[str]) -> str:
    unique = list(dict.fromkeys(names))
    return ", ".join(unique[:3]) + (f" and {len(unique) - 3} more" if len(unique) > 3 else "")


def notice_text(kind: Kind, names: list[str]) -> str:
    """The notice for the things ``names`` names."""
    n = len(names)
    if kind == Kind.APPS:
        if n == 1:
            return f"{names[0]} asks to send telemetry. Open the review to allow or block it."
        return f"{n} new apps ask to send telemetry: {_names(names)}."
    if kind == Kind.BATCHES:
        if n == 1:
            return f"A batch from {names[0]} waits for your review."
        return f"{n} batches wait for your review ({_names(names)})."
    if kind == Kind.STUCK:
        if n == 1:
            return f"Not delivered: {names[0]}. The tray menu and History say what you can do."
        return f"{n} approved batches are not getting through. The tray menu and History say what you can do."
    if n == 1:
        return "A delivery failed for good: the vendor refused it. History shows its answer."
    return f"{n} deliveries failed for good. History shows the vendors' answers."


class Notices(QObject):
    """Decides, per kind, when to tell what; ``notice(kind, text)`` when it is time."""

    notice = Signal(str, str)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        every: Mapping[Kind, float] = EVERY_S,
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self._every = dict(every)
        self._current: dict[Kind, dict[str, str]] = {kind: {} for kind in Kind}
        self._told: dict[Kind, set[str]] = {kind: set() for kind in Kind}
        self._last: dict[Kind, float | None] = dict.fromkeys(Kind)
        self._timers: dict[Kind, QTimer] = {}
        for kind in Kind:
            timer = QTimer(self)
            timer.setSingleShot(True)
            timer.timeout.connect(lambda k=kind: self._flush(k))
            self._timers[kind] = timer

    def consider(self, snapshot: Snapshot) -> None:
        """The state now: tell what is new, or when each kind may speak again."""
        items = notice_items(snapshot)
        for kind in Kind:
            self._current[kind] = items[kind]
            self._told[kind] &= set(items[kind])  # a thing that is gone and comes back is news again
            self._flush(kind)

    def waiting(self, kind: Kind) -> bool:
        """Whether news of ``kind`` waits for its time to be told."""
        return self._timers[kind].isActive()

    def _flush(self, kind: Kind) -> None:
        current, told = self._current[kind], self._told[kind]
        new = [key for key in current if key not in told]
        timer = self._timers[kind]
        if not new:
            timer.stop()
            return
        last = self._last[kind]
        wait = 0.0 if last is None else self._every[kind] - (self._clock() - last)
        if wait > 0:
            if not timer.isActive():
                timer.start(int(wait * 1000) + 1)
            return
        timer.stop()
        self._last[kind] = self._clock()
        told |= set(current)
        self.notice.emit(str(kind), notice_text(kind, [current[key] for key in new]))
