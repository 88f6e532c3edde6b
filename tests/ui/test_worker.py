"""The UI's background primitive: run_task, and Latest, which drops stale answers."""

from __future__ import annotations

import threading

from PySide6.QtCore import QThreadPool
from pytestqt.qtbot import QtBot

from tray_app.ui.worker import Latest, run_task


def test_only_the_newest_requests_answer_is_used() -> None:
    latest = Latest()
    shown: list[str] = []
    first = latest.new()
    first_answer = latest.only(first, shown.append)
    second = latest.new()
    second_answer = latest.only(second, shown.append)
    assert not latest.is_current(first) and latest.is_current(second) and latest.ticket == second
    second_answer("new")
    first_answer("old")  # arrives after the newer request: dropped
    assert shown == ["new"]


def test_drop_makes_every_request_under_way_stale() -> None:
    latest = Latest()
    shown: list[int] = []
    answer = latest.only(latest.new(), shown.append)
    latest.drop()  # the person moved on; nothing new asked
    answer(1)
    assert shown == []


def test_a_slow_answer_to_an_old_request_is_dropped_on_the_ui_thread(qtbot: QtBot) -> None:
    latest = Latest()
    shown: list[str] = []
    release = threading.Event()
    pool = QThreadPool()
    pool.setMaxThreadCount(2)

    def slow() -> str:
        release.wait(5)
        return "old"

    old = run_task(slow, latest.only(latest.new(), shown.append), pool=pool)
    with qtbot.waitSignal(run_task(lambda: "new", latest.only(latest.new(), shown.append), pool=pool).signals.done):
        pass
    assert shown == ["new"]
    # The old task's answer reaches the UI thread (its done signal, connected after the
    # dropping callback, fires) and is dropped there.
    with qtbot.waitSignal(old.signals.done, timeout=5000) as delivered:
        release.set()
    assert delivered.args == ["old"]
    assert shown == ["new"]
    assert pool.waitForDone(5000)
