"""The one way the UI does background work: a QRunnable on the global QThreadPool.

The function runs on a pool thread; its result or its exception comes back as a signal,
delivered on the UI thread (queued connection). Errors always reach ``failed``; nothing
is printed or swallowed. :class:`Latest` drops an answer that arrives after a newer
request was made (the person moved on): the windows tag their requests with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)

T = TypeVar("T")


class TaskSignals(QObject):
    done = Signal(object)
    failed = Signal(object)  # the exception: a TrayError carries title and message


class Task(QRunnable):
    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__()
        self.fn = fn
        self.signals = TaskSignals()
        # Python owns the task: it must live until its queued signal has been delivered.
        self.setAutoDelete(False)

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as exc:  # every failure is handed to the UI, which shows it
            if not _is_tray_error(exc):
                log.exception("background task failed")
            self.signals.failed.emit(exc)
        else:
            self.signals.done.emit(result)


def run_task(
    fn: Callable[[], Any],
    on_done: Callable[[Any], None] | None = None,
    on_failed: Callable[[BaseException], None] | None = None,
    pool: QThreadPool | None = None,
) -> Task:
    """Run ``fn`` off the UI thread; call ``on_done(result)`` or ``on_failed(exc)`` on it."""
    task = Task(fn)
    _live.add(task)
    if on_done is not None:
        task.signals.done.connect(on_done)
    if on_failed is not None:
        task.signals.failed.connect(on_failed)
    task.signals.done.connect(lambda _: _live.discard(task))
    task.signals.failed.connect(lambda _: _live.discard(task))
    (pool or QThreadPool.globalInstance()).start(task)
    return task


_live: set[Task] = set()


def _is_tray_error(exc: BaseException) -> bool:
    from ..core import TrayError

    return isinstance(exc, TrayError)


class Latest:
    """Tags background requests of one kind, so an answer that arrives after a newer
    request was made is dropped instead of shown over the newer one.

    ``ticket = latest.new()`` when a request starts (from then on every earlier one is
    stale); ``latest.is_current(ticket)`` when its answer comes back, or wrap the callback
    with ``latest.only(ticket, callback)``. ``latest.drop()`` makes every request under
    way stale (the person moved on and nothing new is asked); ``latest.ticket`` is the
    newest request's ticket. Used on the UI thread only."""

    def __init__(self) -> None:
        self._newest = 0

    @property
    def ticket(self) -> int:
        return self._newest

    def new(self) -> int:
        self._newest += 1
        return self._newest

    def drop(self) -> None:
        self._newest += 1

    def is_current(self, ticket: int) -> bool:
        return ticket == self._newest

    def only(self, ticket: int, callback: Callable[[T], None]) -> Callable[[T], None]:
        """``callback``, called only while ``ticket`` is the newest request's."""

        def call(value: T) -> None:
            if ticket == self._newest:
                callback(value)

        return call
