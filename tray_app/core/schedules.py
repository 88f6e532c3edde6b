"""The schedule of the running instance: close windows when they end, apply
retention, pick up the spool, and sleep in between.

No polling: the thread sleeps until the earliest open window ends (or an hour for
retention), and is woken early only when something may have moved that time (a
report opened a new batch, a setting changed). The thread is a
:class:`~tray_app.core.loop.BackgroundLoop`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from .broker import Broker
from .loop import BackgroundLoop
from .rules.clock import from_iso
from .storage.spool import Spool, SpoolDrain

log = logging.getLogger(__name__)

RETENTION_EVERY = timedelta(hours=1)
RETRY_AFTER_S = 60.0  # after a round that failed (a busy database, say)


class Housekeeper:
    def __init__(
        self,
        broker: Broker,
        spool: Spool | None = None,
        on_change: Callable[[], None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.broker = broker
        self.spool = spool
        self.on_change = on_change
        self._clock = clock or broker.now
        self.rounds = 0  # how many times it did its work: for tests and status
        self._keys_forgotten: datetime | None = None
        self._due: datetime | None = None  # when run_once is next due (None: at once)
        self._loop = BackgroundLoop(
            "housekeeper", self._step, error_wait_s=RETRY_AFTER_S, logger=log, doing="housekeeping"
        )

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._loop.stop(timeout)

    def wake(self) -> None:
        """Something changed: look at the schedule again."""
        self._loop.wake()

    def run_once(self) -> None:
        closed, sweep = self.broker.tidy()
        drained = self.drain_spool()
        if self.spool is not None:
            self.spool.purge_rejected(self.broker.retention_days)
            self._forget_request_keys(drained)
        self.rounds += 1
        if closed or sweep.expired or sweep.purged or (drained and drained.files):
            log.info(
                "closed %d batch(es), expired %d, purged %d, spool files %d",
                len(closed),
                len(sweep.expired),
                len(sweep.purged),
                drained.files if drained else 0,
            )
            if self.on_change is not None:
                self.on_change()

    def _forget_request_keys(self, drained: SpoolDrain | None) -> None:
        # Only once every spooled request is in (their keys may age out then), and at
        # most hourly: rounds come with report requests, and keys live for days.
        now = self._clock()
        if (drained is None or drained.complete) and (
            self._keys_forgotten is None or now - self._keys_forgotten >= RETENTION_EVERY
        ):
            self.broker.forget_request_keys()
            self._keys_forgotten = now

    def drain_spool(self) -> SpoolDrain | None:
        if self.spool is None or not self.spool.files():
            return None
        drained = self.broker.drain_spool(self.spool)
        for problem in drained.bad_files:
            log.warning("spool file set aside: %s", problem)
        if drained.dropped_by_clients:
            log.warning("apps' spools were full and dropped %d report(s)", drained.dropped_by_clients)
        return drained

    def next_due(self, now: datetime) -> datetime:
        due = now + RETENTION_EVERY
        earliest = self.broker.earliest_window_end()
        if earliest is not None:
            due = min(due, from_iso(earliest))
        return due

    def _step(self, woken: bool) -> float:
        """One round of the loop: the work if it is due, else (woken early, a report came
        in) the spool, which a client may have written to while the endpoint was briefly
        unreachable. Returns the seconds until the work is due. A round that fails is
        tried again after :data:`RETRY_AFTER_S` (the work is still due then)."""
        now = self._clock()
        if self._due is None or now >= self._due:
            self.run_once()
        elif woken:
            self.drain_spool()
        now = self._clock()
        self._due = self.next_due(now)
        return (self._due - now).total_seconds()
