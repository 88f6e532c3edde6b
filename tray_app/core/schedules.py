"""The schedule of the running instance: close windows when they end, apply
retention, pick up the spool, and sleep in between.

No polling: the thread sleeps until the earliest open window ends (or an hour for
retention), and is woken early only when something may have moved that time (a
report opened a new batch, a setting changed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from .broker import Broker
from .errors import TrayError
from .rules.clock import from_iso
from .storage.spool import Spool, SpoolDrain

log = logging.getLogger(__name__)

RETENTION_EVERY = timedelta(hours=1)


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
        self._clock = clock or broker._clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0  # how many times it did its work: for tests and status
        self._keys_forgotten: datetime | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="housekeeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Something changed: look at the schedule again."""
        self._wake.set()

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

    def _run(self) -> None:
        due = self._clock()
        woken = False
        while not self._stop.is_set():
            now = self._clock()
            try:
                if now >= due:
                    self.run_once()
                elif woken:
                    # Woken early (a report came in): a client may have spooled while
                    # the endpoint was briefly unreachable; take that in now.
                    self.drain_spool()
            except TrayError as exc:
                log.warning("housekeeping failed: %s", exc.message)
            except Exception:
                log.exception("housekeeping failed")
            now = self._clock()
            try:
                due = self.next_due(now)
            except TrayError as exc:
                log.warning("cannot read the schedule: %s", exc.message)
                due = now + timedelta(minutes=1)
            woken = self._wake.wait(max(0.0, (due - now).total_seconds()))
            self._wake.clear()
