"""The one loop primitive of the core's threads, and the three loops built on it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.builders import Clock, allowed, tiny
from tests.support.processes import wait_for
from tray_app.core import BackgroundLoop, Broker, Locations, SampleStream
from tray_app.core.errors import StoreError
from tray_app.core.forwarder import DeliveryLoop, Forwarder
from tray_app.core.platform.secrets import SecretStore
from tray_app.core.schedules import Housekeeper

WAIT_S = 5.0


def _until(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    return wait_for(condition, timeout)


class Steps:
    """A step that records each round, sleeps as told and can be made to fail."""

    def __init__(self, sleep: float | None = 3600.0) -> None:
        self.sleep = sleep
        self.woken: list[bool] = []
        self.fail_with: BaseException | None = None
        self.ran = threading.Event()

    def __call__(self, woken: bool) -> float | None:
        self.woken.append(woken)
        self.ran.set()
        if self.fail_with is not None:
            exc, self.fail_with = self.fail_with, None
            raise exc
        return self.sleep


def test_a_step_runs_at_once_then_sleeps_as_long_as_it_says() -> None:
    steps = Steps(sleep=0.05)
    loop = BackgroundLoop("t-sleep", steps)
    loop.start()
    try:
        assert _until(lambda: len(steps.woken) >= 3)
        assert steps.woken[:3] == [False, False, False]  # slept out, not woken
    finally:
        loop.stop()


def test_stop_ends_the_thread_promptly_whatever_the_sleep() -> None:
    for sleep in (3600.0, None, 0.0):
        steps = Steps(sleep=sleep)
        loop = BackgroundLoop("t-stop", steps)
        loop.start()
        assert steps.ran.wait(WAIT_S)
        started = time.monotonic()
        loop.stop(timeout=WAIT_S)
        assert loop.thread is not None and not loop.thread.is_alive()
        assert time.monotonic() - started < 2
        assert not loop.running


def test_stop_before_the_first_step_runs_no_step() -> None:
    steps = Steps()
    loop = BackgroundLoop("t-early", steps)
    loop.start(after_s=3600)
    loop.stop(timeout=WAIT_S)
    assert steps.woken == [] and not loop.running


def test_wake_ends_the_sleep_and_says_so() -> None:
    steps = Steps(sleep=3600.0)
    loop = BackgroundLoop("t-wake", steps)
    loop.start()
    try:
        assert _until(lambda: len(steps.woken) == 1)
        loop.wake()
        assert _until(lambda: len(steps.woken) == 2)
        assert steps.woken == [False, True]
    finally:
        loop.stop()


def test_a_wake_during_a_step_is_not_lost() -> None:
    gate = threading.Event()
    rounds: list[bool] = []
    loop: BackgroundLoop

    def step(woken: bool) -> float:
        rounds.append(woken)
        if len(rounds) == 1:
            loop.wake()  # as an approval committing while a round runs
            gate.set()
        return 3600.0

    loop = BackgroundLoop("t-lost", step)
    loop.start()
    try:
        assert gate.wait(WAIT_S)
        assert _until(lambda: len(rounds) == 2)
    finally:
        loop.stop()


def test_the_first_step_can_wait() -> None:
    steps = Steps()
    loop = BackgroundLoop("t-after", steps)
    loop.start(after_s=3600)
    try:
        time.sleep(0.1)
        assert steps.woken == []
        loop.wake()
        assert _until(lambda: steps.woken == [True])
    finally:
        loop.stop()


def test_a_loop_starts_once() -> None:
    loop = BackgroundLoop("t-once", Steps())
    loop.start()
    try:
        with pytest.raises(RuntimeError, match="started already"):
            loop.start()
    finally:
        loop.stop()


@pytest.mark.parametrize(
    ("error", "level", "words", "traceback"),
    [
        (StoreError("The database is busy: try again."), logging.WARNING, "The database is busy", False),
        (ZeroDivisionError("boom"), logging.ERROR, "t-err round failed", True),
    ],
)
def test_errors_go_to_the_log_never_out_and_the_loop_goes_on(
    error: Exception,
    level: int,
    words: str,
    traceback: bool,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    steps = Steps(sleep=3600.0)
    steps.fail_with = error
    loop = BackgroundLoop("t-err", steps, error_wait_s=0.05, logger=logging.getLogger("tray_app.test_loop"))
    with caplog.at_level(logging.INFO, logger="tray_app.test_loop"):
        loop.start()
        try:
            assert _until(lambda: len(steps.woken) == 2)  # the next round came after error_wait_s
            assert loop.running and loop.failures == 1 and loop.rounds == 2
        finally:
            loop.stop()
    (record,) = [r for r in caplog.records if r.name == "tray_app.test_loop"]
    assert record.levelno == level and words in record.getMessage()
    assert (record.exc_info is not None) is traceback
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_after_an_error_a_wake_runs_the_next_step_at_once(caplog: pytest.LogCaptureFixture) -> None:
    steps = Steps(sleep=3600.0)
    steps.fail_with = StoreError("busy")
    loop = BackgroundLoop("t-err-wake", steps, error_wait_s=3600.0)
    loop.start()
    try:
        assert _until(lambda: len(steps.woken) == 1)
        loop.wake()
        assert _until(lambda: steps.woken == [False, True])
    finally:
        loop.stop()


# -- the three loops built on it ---------------------------------------------------------


def test_a_failed_housekeeping_round_is_logged_and_the_next_one_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(datetime(2026, 11, 24, 10, 30, tzinfo=UTC))
    broker = Broker.open(Locations.under(tmp_path / "home"), clock)
    try:
        m = tiny()
        allowed(broker, m)
        broker.ingest(m.app_id, [{"event": "e"}])
        clock.advance(days=1)  # its window has ended: the work is due, and stays due while it fails
        real_tidy = broker.tidy
        calls: list[str] = []

        def tidy() -> object:
            calls.append("tidy")
            if len(calls) == 1:
                raise StoreError("The database is busy: try again.")
            return real_tidy()

        monkeypatch.setattr(broker, "tidy", tidy)
        keeper = Housekeeper(broker)
        with caplog.at_level(logging.WARNING, logger="tray_app.core.schedules"):
            keeper.start()
            try:
                assert _until(lambda: len(calls) == 1)
                time.sleep(0.2)
                assert len(calls) == 1  # a failed round waits (no spinning on the error)
                keeper.wake()  # the work is still due: the next round does it
                assert _until(lambda: keeper.rounds == 1)
                assert len(calls) == 2
                assert broker.pending()[0].status == "pending"
            finally:
                keeper.stop()
        assert any("housekeeping failed: The database is busy" in r.getMessage() for r in caplog.records)
    finally:
        broker.close()


def test_the_delivery_loop_logs_a_failed_round_and_goes_on(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    forwarder = Forwarder(broker.deliveries, SecretStore())
    rounds: list[int] = []

    def deliver_due() -> list[object]:
        rounds.append(1)
        if len(rounds) == 1:
            raise RuntimeError("a bug")
        return []

    monkeypatch.setattr(forwarder, "deliver_due", deliver_due)
    loop = DeliveryLoop(forwarder)
    try:
        with caplog.at_level(logging.ERROR, logger="tray_app.core.forwarder"):
            loop.start()
            assert _until(lambda: len(rounds) == 1)
            loop.wake()
            assert _until(lambda: len(rounds) == 2)
        assert loop.running
        assert any("delivery round failed" in r.getMessage() and r.exc_info for r in caplog.records)
    finally:
        loop.stop()
        forwarder.close()


def test_the_sample_stream_logs_what_fails_and_keeps_going(
    broker: Broker, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = SampleStream(broker, ["org.example.gone"], every_s=0.02)  # no such app: every round fails
    with caplog.at_level(logging.WARNING, logger="tray_app.core.demo"):
        stream.start()
        try:
            assert _until(lambda: len([r for r in caplog.records if r.name == "tray_app.core.demo"]) >= 2)
        finally:
            stream.stop(timeout=WAIT_S)
    assert all("demo sample reports failed" in r.getMessage() for r in caplog.records if r.name == "tray_app.core.demo")
    assert capsys.readouterr().err == ""
