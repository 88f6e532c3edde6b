"""The one loop the core's threads run: do a step, sleep as long as it says, repeat.

The schedules (:class:`~tray_app.core.schedules.Housekeeper`), the delivery loop
(:class:`~tray_app.core.forwarder.DeliveryLoop`) and the demo's sample reports
(:class:`~tray_app.core.demo.SampleStream`) are each a :class:`BackgroundLoop` with
their own step. A step returns how many seconds to sleep (``None``: until woken);
:meth:`BackgroundLoop.wake` ends a sleep early, :meth:`BackgroundLoop.stop` ends the
loop. A step that raises is logged (a :class:`~tray_app.core.errors.TrayError` as one
line, anything else with its traceback), never printed, and the loop goes on after
``error_wait_s``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .errors import TrayError

# A step that says "until woken" still looks again after this long: a lost wake-up
# (another process changed something without telling us) cannot stall a loop for ever.
LONGEST_SLEEP_S = 3600.0

Step = Callable[[bool], float | None]
"""``step(woken)``: one round of work; ``woken`` says whether :meth:`BackgroundLoop.wake`
ended the sleep before it. Returns the seconds to sleep before the next round."""


class BackgroundLoop:
    """A daemon thread that runs ``step`` over and over, sleeping in between."""

    def __init__(
        self,
        name: str,
        step: Step,
        *,
        error_wait_s: float = 60.0,
        logger: logging.Logger | None = None,
        doing: str | None = None,
    ) -> None:
        self.name = name  # the thread's name
        self.doing = doing or f"{name} round"  # what a failure is logged as: "<doing> failed: ..."
        self._step = step
        self.error_wait_s = error_wait_s
        self._log = logger or logging.getLogger(__name__)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0  # steps run, failed or not (tests and status)
        self.failures = 0  # steps that raised

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, after_s: float = 0.0) -> None:
        """Start the thread; its first step runs after ``after_s`` seconds (or a wake)."""
        if self._thread is not None:
            raise RuntimeError(f"the {self.name} loop was started already")
        self._thread = threading.Thread(target=self._run, args=(after_s,), name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run the next step now (after the one under way, if any)."""
        self._wake.set()

    def stop(self, timeout: float | None = 5.0) -> None:
        """End the loop after the step under way; wait up to ``timeout`` seconds for the
        thread to end (``0``: do not wait)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and timeout != 0 and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self, first_wait: float) -> None:
        woken = self._sleep(first_wait) if first_wait > 0 else False
        while not self._stop.is_set():
            self.rounds += 1
            try:
                wait = self._step(woken)
            except TrayError as exc:
                self.failures += 1
                self._log.warning("%s failed: %s", self.doing, exc.message)
                wait = self.error_wait_s
            except Exception:
                self.failures += 1
                self._log.exception("%s failed", self.doing)
                wait = self.error_wait_s
            if self._stop.is_set():
                break
            woken = self._sleep(LONGEST_SLEEP_S if wait is None else wait)

    def _sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; whether a wake (or a stop) ended it early. The wake is
        cleared only after sleeping: one that came during the step ends this sleep at
        once instead of being lost."""
        woken = self._wake.wait(min(max(0.0, seconds), LONGEST_SLEEP_S))
        self._wake.clear()
        return woken
