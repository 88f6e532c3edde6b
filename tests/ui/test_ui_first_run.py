"""The first ten minutes: the welcome, Help and About, the demo (its vendor's page, after a
restart, removing it), and batches still collecting. Real widgets offscreen, a real
instance and SQLite, real clicks where a person clicks."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QMessageBox, QToolButton, QTreeView
from pytestqt.qtbot import QtBot

from tests.support.builders import allowed, tiny
from tests.ui.test_ui_review import seen_text
from tray_app.core import Broker, Locations, Manifest
from tray_app.core.platform.autostart import XdgAutostart
from tray_app.ui import application
from tray_app.ui.application import TrayApp
from tray_app.ui.review_window import ReviewWindow
from tray_app.ui.tray import Tray
from tray_app.ui.tray_snapshot import take_snapshot

PHOTOEDIT_ID = "org.example.photoedit"
DEMO_IDS = {PHOTOEDIT_ID, "net.notesync.desktop", "org.inkwell.notes"}


def _start(qtbot: QtBot, home: Path, config: Path) -> TrayApp:
    app = TrayApp(Locations.under(home), autostart=XdgAutostart(config))
    app.start()
    qtbot.waitUntil(lambda: app.endpoint is not None, timeout=10000)
    return app


@pytest.fixture
def apps(qtbot: QtBot, tmp_path: Path) -> Iterator[list[TrayApp]]:
    """Tray apps started by a test, quit at its end (each at most once)."""
    started: list[TrayApp] = []
    yield started
    for app in started:
        if not app._quitting:
            app.quit()


def _app(qtbot: QtBot, apps: list[TrayApp], tmp_path: Path) -> TrayApp:
    app = _start(qtbot, tmp_path / "home", tmp_path / "config")
    apps.append(app)
    return app


def _click(qtbot: QtBot, button: QAbstractButton) -> None:
    qtbot.waitUntil(lambda: button.isVisible() and button.isEnabled(), timeout=5000)
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def _answer(qtbot: QtBot, window: ReviewWindow, text: str | None) -> QMessageBox:
    """Click ``text`` (None: Cancel) in the question the window asks."""
    qtbot.waitUntil(lambda: window.question is not None and window.question.isVisible(), timeout=5000)
    box = window.question
    assert box is not None
    if text is None:
        button = box.button(QMessageBox.StandardButton.Cancel)
    else:
        button = next(b for b in box.buttons() if b.text() == text)
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    return box


def _load_demo(qtbot: QtBot, app: TrayApp) -> ReviewWindow:
    review = app.review
    assert review is not None
    _click(qtbot, review.demo_button)
    qtbot.waitUntil(lambda: app.demo_vendor is not None and app.demo_stream is not None, timeout=10000)
    return review


def _approve_shown(qtbot: QtBot, review: ReviewWindow, app_id: str) -> None:
    qtbot.waitUntil(
        lambda: (
            review._current is not None and review._current.app.app_id == app_id and review.approve_button.isEnabled()
        ),
        timeout=5000,
    )
    with qtbot.waitSignal(review.decided, timeout=5000):
        QTest.mouseClick(review.approve_button, Qt.MouseButton.LeftButton)


class UrlCatcher(QObject):
    """Stands in for the browser: the URLs Qt was asked to open."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url.toString())


@pytest.fixture
def browser() -> Iterator[UrlCatcher]:
    catcher = UrlCatcher()
    QDesktopServices.setUrlHandler("http", catcher, "open")
    yield catcher
    QDesktopServices.unsetUrlHandler("http")


# -- the welcome, Help and About --------------------------------------------------------


def test_the_first_run_with_a_tray_says_what_it_is_and_where_its_icon_lives_once(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, apps: list[TrayApp]
) -> None:
    monkeypatch.setattr(application.QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    messages: list[tuple[Any, ...]] = []
    monkeypatch.setattr(Tray, "showMessage", lambda self, *a: messages.append(a))
    first = _app(qtbot, apps, tmp_path)
    assert first.tray is not None and first.review is None  # with a tray, no window opens by itself
    qtbot.waitUntil(lambda: first.welcome is not None and first.welcome.isVisible(), timeout=5000)
    welcome = first.welcome
    assert welcome is not None
    seen = seen_text(welcome.text)
    assert "sends only what you approve" in seen
    assert "Its icon is in the system tray of your panel, usually by the clock" in seen
    assert welcome.demo_button.isVisible() and "three example apps" in welcome.demo_note.text()
    assert [m[0] for m in messages] == ["Telemetry Tray is running"]
    assert "Its icon is here" in messages[0][1]
    first.quit()

    again = _app(qtbot, apps, tmp_path)  # the second start: nothing is announced again
    qtbot.waitUntil(lambda: again.snapshot.ready, timeout=5000)
    qtbot.wait(300)
    assert again.welcome is None and [m[0] for m in messages] == ["Telemetry Tray is running"]


def test_help_and_about_opens_the_welcome_and_its_demo_button_loads_the_demo(
    qtbot: QtBot, tmp_path: Path, apps: list[TrayApp]
) -> None:
    app = _app(qtbot, apps, tmp_path)
    review = app.review
    assert review is not None  # no tray offscreen: the review window stands in for it
    assert app.welcome is None  # its first-run page greets instead of a second window
    assert app.menu_actions.about_action in app.menu_actions.standing()
    help_button = next(
        b for b in review.findChildren(QToolButton) if b.defaultAction() is app.menu_actions.about_action
    )
    _click(qtbot, help_button)
    welcome = app.welcome
    assert welcome is not None and welcome.isVisible()
    assert "the review window stands in for the icon" in seen_text(welcome.text)
    _click(qtbot, welcome.demo_button)
    qtbot.waitUntil(lambda: app.demo_vendor is not None, timeout=10000)
    qtbot.waitUntil(lambda: not welcome.demo_button.isVisible(), timeout=5000)
    assert "The demo is loaded" in welcome.demo_note.text()
    broker = app.broker
    assert broker is not None and {a.app_id for a in broker.apps()} == DEMO_IDS


# -- the demo ---------------------------------------------------------------------------


def test_the_demo_selects_what_its_notice_speaks_of_and_its_vendor_page_stays_a_click_away(
    qtbot: QtBot, tmp_path: Path, apps: list[TrayApp], browser: UrlCatcher
) -> None:
    app = _app(qtbot, apps, tmp_path)
    review = _load_demo(qtbot, app)
    vendor = app.demo_vendor
    assert vendor is not None
    assert seen_text(review.banner).startswith("Demo loaded. PhotoEdit's batch is selected")
    qtbot.waitUntil(lambda: review._current is not None, timeout=5000)
    assert review._current is not None and review._current.app.app_id == PHOTOEDIT_ID
    assert review.demo_bar.isVisible() and vendor.url.removeprefix("http://") in seen_text(review.demo_text)
    _click(qtbot, review.vendor_button)
    assert browser.urls == [vendor.url]

    _approve_shown(qtbot, review, PHOTOEDIT_ID)
    approved = seen_text(review.banner)
    assert approved.startswith("Approved PhotoEdit's batch of 25 reports: ")
    assert approved.endswith(" bytes will be sent to 127.0.0.1.")
    size = approved.split(": ", 1)[1].split(" bytes")[0]
    qtbot.waitUntil(lambda: len(vendor.received) == 1, timeout=10000)
    assert f"{len(vendor.received[0].body):,}" == size
    # Once the instance has sent it, the banner says so; the vendor's page is still there.
    qtbot.waitUntil(lambda: seen_text(review.banner).startswith(f"Sent {size} bytes to 127.0.0.1"), timeout=10000)
    assert review.vendor_button.isVisible()
    _click(qtbot, review.vendor_button)
    assert browser.urls == [vendor.url, vendor.url]
    with urllib.request.urlopen(vendor.url, timeout=5) as answer:
        assert vendor.received[0].idempotency_key in answer.read().decode()


def test_after_a_restart_the_demo_vendor_listens_again_where_its_apps_send(
    qtbot: QtBot, tmp_path: Path, apps: list[TrayApp]
) -> None:
    first = _app(qtbot, apps, tmp_path)
    review = _load_demo(qtbot, first)
    broker, vendor = first.broker, first.demo_vendor
    assert broker is not None and vendor is not None
    port = vendor.port
    broker.set_paused_all(True)  # the approved batch is not sent before the restart
    _approve_shown(qtbot, review, PHOTOEDIT_ID)
    qtbot.wait(300)
    assert vendor.received == []
    first.quit()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(vendor.url, timeout=2)  # gone with the tray
    resumed = Broker.open(Locations.under(tmp_path / "home"))
    resumed.set_paused_all(False)
    resumed.close()

    again = _app(qtbot, apps, tmp_path)
    qtbot.waitUntil(lambda: again.demo_vendor is not None and again.demo_stream is not None, timeout=10000)
    vendor = again.demo_vendor
    assert vendor is not None and vendor.port == port  # where the demo apps' manifests send
    assert again.broker is not None
    assert {a.app_id: a.status for a in again.broker.apps()}[PHOTOEDIT_ID] == "allowed"  # consent kept
    # The batch approved before the restart reaches it (a first try may have found it not up yet).
    qtbot.waitUntil(lambda: len(vendor.received) == 1, timeout=20000)
    review = again.review
    assert review is not None
    qtbot.waitUntil(lambda: review.vendor_button.isVisible(), timeout=5000)


def test_a_demo_port_taken_meanwhile_is_said_and_remove_the_demo_takes_it_all_away(
    qtbot: QtBot, tmp_path: Path, apps: list[TrayApp]
) -> None:
    first = _app(qtbot, apps, tmp_path)
    _load_demo(qtbot, first)
    assert first.demo_vendor is not None
    port = first.demo_vendor.port
    first.quit()
    with socket.socket() as other:  # another program takes the port while the tray is off
        other.bind(("127.0.0.1", port))
        other.listen()
        again = _app(qtbot, apps, tmp_path)
        review = again.review
        assert review is not None
        qtbot.waitUntil(lambda: f"127.0.0.1:{port} again" in seen_text(review.banner), timeout=10000)
        assert "in use by another program" in seen_text(review.banner)
        assert again.demo_vendor is None and again.demo_loaded
        assert review.demo_bar.isVisible() and not review.vendor_button.isVisible()
        assert "its vendor is not running" in seen_text(review.demo_text)
        _click(qtbot, review.remove_demo_button)
        _answer(qtbot, review, "Remove the demo")
        broker = again.broker
        assert broker is not None
        qtbot.waitUntil(lambda: broker.apps() == [], timeout=10000)
    qtbot.waitUntil(lambda: seen_text(review.banner).startswith("Removed the demo: its 3 apps"), timeout=5000)
    assert not review.demo_bar.isVisible()


def test_remove_the_demo_asks_first_then_removes_its_apps_and_data_and_stops_its_vendor(
    qtbot: QtBot, tmp_path: Path, apps: list[TrayApp]
) -> None:
    app = _app(qtbot, apps, tmp_path)
    review = _load_demo(qtbot, app)
    broker, vendor = app.broker, app.demo_vendor
    assert broker is not None and vendor is not None
    waiting = sum(b.reports for b in broker.pending())
    assert waiting >= 47  # 25 + 10 + 12, and the sample stream's
    _click(qtbot, review.remove_demo_button)
    box = _answer(qtbot, review, None)  # Cancel: nothing changes
    assert "PhotoEdit, NoteSync and Inkwell Notes are removed" in box.text().replace("apps (", "").replace(")", "")
    qtbot.wait(200)
    assert {a.app_id for a in broker.apps()} == DEMO_IDS and app.demo_vendor is vendor
    _click(qtbot, review.remove_demo_button)
    _answer(qtbot, review, "Remove the demo")
    qtbot.waitUntil(lambda: app.demo_vendor is None and not app.demo_loaded, timeout=10000)
    assert broker.apps() == [] and broker.pending() == []
    assert app.demo_stream is None
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(vendor.url, timeout=2)  # the vendor stopped
    assert any(r.detail.get("reason") == "app removed" for r in broker.history())  # the history keeps them
    qtbot.waitUntil(lambda: review.demo_button.isVisible() and review.demo_button.isEnabled(), timeout=5000)
    assert not review.demo_bar.isVisible()
    notice = seen_text(review.banner)
    assert notice.startswith("Removed the demo: its 3 apps and ") and "its vendor stopped" in notice
    # Loaded again, it works as the first time.
    _click(qtbot, review.demo_button)
    qtbot.waitUntil(lambda: app.demo_vendor is not None, timeout=10000)
    assert {a.app_id for a in broker.apps()} == DEMO_IDS


# -- batches still collecting -----------------------------------------------------------


@pytest.fixture
def india(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The local time zone is India's (UTC+5:30, no daylight saving): times read differently."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def window(qtbot: QtBot, broker: Broker) -> ReviewWindow:
    w = ReviewWindow(broker)
    qtbot.addWidget(w)
    w.show()
    return w


def _row_of_app(tree: QTreeView, app_name: str) -> Any:
    """The first batch row under ``app_name``."""
    model = tree.model()
    for row in range(model.rowCount()):
        top = model.index(row, 0)
        if top.data() == app_name:
            return model.index(0, 0, top)
    raise AssertionError(f"no group {app_name!r}")


def test_a_batch_still_collecting_shows_when_it_closes_and_close_now_closes_only_it(
    qtbot: QtBot, window: ReviewWindow, broker: Broker, photoedit: Manifest, india: None
) -> None:
    # 10:30 UTC is 16:00 in India; a daily batch collects until midnight UTC, 05:30 there.
    allowed(broker, photoedit)
    other = tiny()
    allowed(broker, other)
    broker.ingest(other.app_id, [{"event": "a"}])
    broker.ingest(photoedit.app_id, [{"event": "crop", "app_version": "3.1.4"}] * 3)
    window.refresh()
    # Not "Nothing is waiting": the batches are there, with when they close.
    qtbot.waitUntil(lambda: window.batches.rowCount() == 2, timeout=5000)
    qtbot.waitUntil(lambda: window._current is not None, timeout=5000)  # a batch, not the empty page
    assert window.pages.currentWidget() is not window.empty
    index = _row_of_app(window.tree, "PhotoEdit")
    assert index.data() == "2026-11-24 05:30 to 11-25 05:30"  # the UTC day, in local time
    assert index.siblingAtColumn(2).data() == "collecting until tomorrow 05:30"
    window.tree.scrollTo(index)
    QTest.mouseClick(window.tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     window.tree.visualRect(index).center())  # fmt: skip
    qtbot.waitUntil(
        lambda: window._current is not None and window._current.app.name == "PhotoEdit" and window.reason.isVisible(),
        timeout=5000,
    )
    assert window._current is not None
    reason = seen_text(window.reason)
    assert reason.startswith("Still collecting: what PhotoEdit sends until tomorrow 05:30 (in 13 h 30 min)")
    assert "cannot be approved yet" in reason and "3 reports" in reason
    assert not window.approve_button.isEnabled() and window.discard_button.isEnabled()
    assert "Window 2026-11-24 05:30 to 11-25 05:30 (IST)" in seen_text(window.summary)
    assert "collecting until tomorrow 05:30" in seen_text(window.summary)
    batch_id = window._current.batch.batch_id

    _click(qtbot, window.close_now_button)
    qtbot.waitUntil(lambda: window.approve_button.isEnabled(), timeout=5000)
    assert window._current is not None and window._current.batch.batch_id == batch_id  # still on screen
    assert window._current.batch.status == "pending"
    assert not window.reason.isVisible() and not window.close_now_button.isVisible()
    assert seen_text(window.banner).startswith("Closed PhotoEdit's batch: decide on it below.")
    statuses = {b.app_id: b.status for b in broker.pending()}
    assert statuses == {photoedit.app_id: "pending", other.app_id: "open"}  # the other app's goes on collecting


def test_times_in_the_review_are_local_and_the_payload_keeps_utc(
    qtbot: QtBot, window: ReviewWindow, broker: Broker, photoedit: Manifest, india: None
) -> None:
    allowed(broker, photoedit)
    broker.ingest(photoedit.app_id, [{"event": "crop", "ts": "2026-11-24T10:11:12Z"}])
    (closed,) = broker.close_batches(force=True)
    window.refresh()
    qtbot.waitUntil(lambda: window._current is not None and window.approve_button.isEnabled(), timeout=5000)
    assert _row_of_app(window.tree, "PhotoEdit").data() == "2026-11-24 05:30 to 11-25 05:30"
    assert "Window 2026-11-24 05:30 to 11-25 05:30 (IST)" in seen_text(window.summary)
    shown = window.payload.toPlainText()
    assert '"start": "2026-11-24T00:00:00Z"' in shown and '"ts": "2026-11-24T10:00:00Z"' in shown  # the wire's UTC
    assert closed.status == "pending"


def test_the_tray_status_counts_the_batches_still_collecting(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    broker.ingest(photoedit.app_id, [{"event": "crop"}] * 46)
    assert take_snapshot(broker).summary() == "Nothing is waiting for you; 1 batch collecting"
    broker.close_batches(force=True)
    assert take_snapshot(broker).summary() == "1 batch waiting from 1 app"
