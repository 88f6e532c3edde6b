"""The tray menu and the application, with real widgets offscreen and a real instance."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QToolButton
from pytestqt.qtbot import QtBot

from tests.support.builders import PHOTOEDIT, allowed, tiny
from tests.ui.test_ui_review import seen_text
from tray_app.core import Broker, Locations, Manifest, load_manifest
from tray_app.core.platform.autostart import XdgAutostart
from tray_app.core.platform.endpoint_file import read_endpoint
from tray_app.ui.application import NO_TRAY_HELP, TrayApp, ask_running_ui
from tray_app.ui.icons import TrayState
from tray_app.ui.tray import Tray, TrayMenu
from tray_app.ui.tray_snapshot import NOTHING, Snapshot, take_snapshot

EVENT = {"event": "crop", "app_version": "3.1.4"}


def _menu_texts(tray: Tray) -> list[str]:
    tray.rebuild_menu()
    return [a.text() for a in tray.menu.actions() if not a.isSeparator()]


def test_the_menu_says_what_waits(qtbot: QtBot, broker: Broker, photoedit: Manifest, notesync: Manifest) -> None:
    actions = TrayMenu()
    tray = Tray(actions)
    assert tray.state is TrayState.QUIET
    allowed(broker, photoedit)
    for _ in range(3):
        broker.ingest(photoedit.app_id, [EVENT])
        broker.close_batches(force=True)
    broker.register(notesync)
    tray.show_snapshot(take_snapshot(broker))
    texts = _menu_texts(tray)
    assert texts[0] == "3 batches waiting from 1 app; 1 new app asking to send"
    assert "Review pending (4)…" in texts
    assert "    NoteSync asks to send telemetry…" in texts
    assert "    PhotoEdit (3)…" in texts
    assert texts[-5:] == ["Pause all telemetry", "History…", "Settings…", "Help and About…", "Quit"]
    assert tray.state is TrayState.WAITING
    assert tray.toolTip() == "Telemetry Tray: 3 batches waiting from 1 app; 1 new app asking to send"
    photo = next(a for a in tray.menu.actions() if a.text() == "    PhotoEdit (3)…")
    with qtbot.waitSignal(actions.review) as blocker:
        photo.trigger()
    assert blocker.args == [photoedit.app_id]
    pause = next(a for a in tray.menu.actions() if a.text() == "Pause all telemetry")
    with qtbot.waitSignal(actions.pause) as blocker:
        pause.trigger()
    assert blocker.args == [True]
    tray.show_snapshot(Snapshot(replace(NOTHING, paused_all=True), ready=True))
    assert tray.state is TrayState.PAUSED and _menu_texts(tray)[0] == "Nothing is waiting for you; all telemetry paused"
    tray.show_snapshot(Snapshot(problem="The database is broken."))
    assert tray.state is TrayState.ERROR and "broken" in tray.toolTip()


@pytest.fixture
def tray_app(qtbot: QtBot, tmp_path: Path) -> TrayApp:
    app = TrayApp(Locations.under(tmp_path / "home"), autostart=XdgAutostart(tmp_path / "config"))
    app.start()
    qtbot.waitUntil(lambda: app.endpoint is not None, timeout=10000)
    yield app
    app.quit()


def test_without_a_tray_the_review_window_opens_and_says_why(tray_app: TrayApp) -> None:
    # The offscreen platform has no system tray, like GNOME without the extension.
    assert tray_app.tray is None
    assert tray_app.review is not None and tray_app.review.isVisible()
    assert NO_TRAY_HELP[:40] in tray_app.review.banner.text()


def test_the_app_hosts_the_instance_and_follows_changes(qtbot: QtBot, tray_app: TrayApp, tmp_path: Path) -> None:
    endpoint = read_endpoint(tray_app.locations)
    assert endpoint is not None and tray_app.endpoint == endpoint
    manifest = json.dumps(load_manifest(PHOTOEDIT).to_obj())
    request = urllib.request.Request(endpoint.url + "/v1/apps", data=manifest.encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
    # Registered over HTTP, in another "program": the open window shows the request by itself.
    review = tray_app.review
    assert review is not None
    qtbot.waitUntil(lambda: review.pages.currentIndex() == 2, timeout=5000)
    assert "PhotoEdit by Example Corp" in review.consent_text.text()
    qtbot.waitUntil(lambda: len(tray_app.snapshot.awaiting_consent) == 1, timeout=5000)


def test_a_second_launch_raises_the_first(qtbot: QtBot, tray_app: TrayApp) -> None:
    review = tray_app.review
    assert review is not None
    review.hide()
    assert ask_running_ui(tray_app.locations)
    qtbot.waitUntil(review.isVisible, timeout=5000)


def test_closing_windows_does_not_quit(qtbot: QtBot, tray_app: TrayApp) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication) and not app.quitOnLastWindowClosed()
    assert tray_app.review is not None
    tray_app.review.close()
    assert tray_app.broker is not None  # still running
    assert read_endpoint(tray_app.locations) is not None


def test_quit_stops_the_instance(qtbot: QtBot, tmp_path: Path) -> None:
    app = TrayApp(Locations.under(tmp_path / "home2"), autostart=XdgAutostart(tmp_path / "config"))
    app.start()
    qtbot.waitUntil(lambda: app.endpoint is not None, timeout=10000)
    app.quit()
    assert read_endpoint(app.locations) is None


def test_first_run_demo_shows_the_whole_flow(qtbot: QtBot, tray_app: TrayApp) -> None:
    review = tray_app.review
    assert review is not None
    qtbot.waitUntil(review.demo_button.isVisible, timeout=5000)
    assert "Welcome to Telemetry Tray" in review.empty_text.text()
    qtbot.mouseClick(review.demo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tray_app.demo_vendor is not None and tray_app.demo_stream is not None, timeout=5000)
    assert seen_text(review.banner).startswith("Demo loaded. PhotoEdit's batch is selected")
    broker = tray_app.broker
    assert broker is not None
    assert {a.app_id: a.status for a in broker.apps()} == {
        "org.example.photoedit": "allowed",
        "net.notesync.desktop": "awaiting_consent",
        "org.inkwell.notes": "allowed",  # an OpenTelemetry app: its vendor receives OTLP
    }
    # The review opens on the batch the notice speaks of: PhotoEdit's, there to approve.
    qtbot.waitUntil(lambda: review._current is not None and review.approve_button.isEnabled(), timeout=5000)
    assert review._current is not None and review._current.app.app_id == "org.example.photoedit"
    shown = review.payload.toPlainText()
    assert "sam@example.net" not in shown and "holiday-photos" not in shown
    with qtbot.waitSignal(review.decided, timeout=5000):
        review.approve()
    vendor = tray_app.demo_vendor
    assert vendor is not None
    qtbot.waitUntil(lambda: len(vendor.received) == 1, timeout=10000)  # sent by the instance at once
    assert json.loads(vendor.received[0].body) == json.loads(shown)
    with urllib.request.urlopen(vendor.url, timeout=5) as answer:
        page = answer.read().decode()
    assert "Demo vendor: what arrived" in page and vendor.received[0].idempotency_key in page
    # The OpenTelemetry app's batch reaches the demo vendor as an OTLP logs request.
    review.show_app("org.inkwell.notes")
    qtbot.waitUntil(lambda: review._current is not None and review.approve_button.isEnabled(), timeout=5000)
    otlp = json.loads(review.payload.toPlainText())
    with qtbot.waitSignal(review.decided, timeout=5000):
        review.approve()
    qtbot.waitUntil(lambda: len(vendor.received) == 2, timeout=10000)
    assert vendor.received[1].path == "/v1/logs" and json.loads(vendor.received[1].body) == otlp
    assert len(otlp["resourceLogs"][0]["scopeLogs"][0]["logRecords"]) == 12


def test_batches_waiting_for_credentials_show_as_a_problem(broker: Broker) -> None:
    from tray_app.core.forwarder import Forwarder
    from tray_app.core.platform.secrets import SecretStore

    class NoKeyring(SecretStore):
        def available(self) -> bool:
            return False

        def status(self) -> str:
            return "No OS keyring is available."

    manifest = tiny(auth="bearer", endpoint="http://127.0.0.1:9/v1")
    allowed(broker, manifest)
    broker.ingest(manifest.app_id, [{"event": "e"}])
    (closed,) = broker.close_batches(force=True)
    broker.approve(closed.batch_id)
    with closing(Forwarder(broker.deliveries, NoKeyring())) as forwarder:
        (outcome,) = forwarder.deliver_due()
    assert outcome.outcome == "waiting for credentials"
    tray = Tray(TrayMenu())
    tray.show_snapshot(take_snapshot(broker))
    assert tray.state is TrayState.ERROR
    assert "1 batch waiting for credentials" in tray.toolTip()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_the_tray_process_quits_cleanly_on_a_signal(tmp_path: Path, sig: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.support.builders import ROOT

    home = tmp_path / "home"
    env = {**os.environ, "TELEMETRY_TRAY_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen([sys.executable, "-m", "tray_app"], env=env, cwd=ROOT,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "serving on" in line:
                break
        assert (home / "endpoint.json").exists()
        proc.send_signal(getattr(signal, sig))
        assert proc.wait(timeout=15) == 0
        assert not (home / "endpoint.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _register_over_http(app: TrayApp, manifest: Manifest) -> None:
    assert app.endpoint is not None
    request = urllib.request.Request(app.endpoint.url + "/v1/apps", data=json.dumps(manifest.to_obj()).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201


def test_an_app_registering_while_the_tray_runs_opens_its_consent_question(qtbot: QtBot, tray_app: TrayApp) -> None:
    review = tray_app.review
    assert review is not None and tray_app.broker is not None
    qtbot.waitUntil(lambda: tray_app._asking is not None, timeout=5000)  # the first look has been taken
    review.hide()
    _register_over_http(tray_app, tiny(app_id="org.example.asks"))
    qtbot.waitUntil(review.isVisible, timeout=5000)
    qtbot.waitUntil(lambda: review.pages.currentIndex() == 2, timeout=5000)
    # With "Ask about new apps when they register" off, the next one only waits in the review.
    tray_app.broker.set_preference("new_app_prompts", "off")
    review.hide()
    _register_over_http(tray_app, tiny(app_id="org.example.quiet"))
    qtbot.waitUntil(lambda: "org.example.quiet" in {a.app_id for a in tray_app.snapshot.awaiting_consent}, timeout=5000)
    qtbot.wait(300)  # the (wrong) prompt would have come by now
    assert not review.isVisible()


def test_a_new_app_does_not_take_away_the_batch_being_decided(qtbot: QtBot, tray_app: TrayApp) -> None:
    review, broker = tray_app.review, tray_app.broker
    assert review is not None and broker is not None
    qtbot.waitUntil(lambda: tray_app._asking is not None, timeout=5000)
    first = tiny(app_id="org.example.first")
    allowed(broker, first)
    broker.ingest(first.app_id, [{"event": "open"}])
    (closed,) = broker.close_batches(force=True)
    tray_app.open_review()
    review.refresh(select=f"batch:{closed.batch_id}")
    qtbot.waitUntil(lambda: review.deciding_batch() and review._current.batch.batch_id == closed.batch_id,
                    timeout=5000)  # fmt: skip
    _register_over_http(tray_app, tiny(app_id="org.example.asks", name="Asker"))
    qtbot.waitUntil(lambda: "Asker just registered and asks for your consent" in review.banner.text(), timeout=5000)
    assert review.deciding_batch() and review._current is not None
    assert review._current.batch.batch_id == closed.batch_id  # still the batch in front of the person


def test_settings_and_the_forwarder_share_one_keyring_handle(tray_app: TrayApp) -> None:
    # Else Settings could show a secret stored while the forwarder still remembers "no keyring".
    assert tray_app.instance is not None and tray_app.instance.forwarder is not None
    assert tray_app.instance.forwarder.secrets is tray_app.secrets


def _menu_buttons(app: TrayApp) -> dict[str, QToolButton]:
    """The fallback window's buttons for the tray menu's entries, by the entry's text."""
    assert app.review is not None
    entries = app.menu_actions.standing()
    return {b.defaultAction().text(): b for b in app.review.findChildren(QToolButton) if b.defaultAction() in entries}


def test_without_a_tray_the_window_offers_the_tray_menus_entries(qtbot: QtBot, tray_app: TrayApp) -> None:
    review = tray_app.review
    assert tray_app.tray is None and review is not None
    buttons = _menu_buttons(tray_app)
    assert list(buttons) == ["Pause all telemetry", "History…", "Settings…", "Help and About…", "Quit"]
    assert all(b.isVisible() and b.accessibleName() for b in buttons.values())
    assert "telemetry-tray quit" in seen_text(review.banner)
    qtbot.waitUntil(lambda: tray_app.snapshot.ready and buttons["Settings…"].isEnabled(), timeout=5000)

    QTest.mouseClick(buttons["Settings…"], Qt.MouseButton.LeftButton)
    assert tray_app.settings is not None and tray_app.settings.isVisible()
    QTest.mouseClick(buttons["History…"], Qt.MouseButton.LeftButton)
    assert tray_app.history is not None and tray_app.history.isVisible()

    broker, pause = tray_app.broker, buttons["Pause all telemetry"]
    assert broker is not None and not pause.isChecked()
    QTest.mouseClick(pause, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: broker.paused_all and tray_app.snapshot.overview.paused_all, timeout=5000)
    assert pause.isChecked()
    QTest.mouseClick(pause, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not broker.paused_all and not tray_app.snapshot.overview.paused_all, timeout=5000)
    assert not pause.isChecked()


def test_without_a_tray_quit_in_the_window_quits(qtbot: QtBot, tmp_path: Path) -> None:
    app = TrayApp(Locations.under(tmp_path / "home"), autostart=XdgAutostart(tmp_path / "config"))
    app.start()
    qtbot.waitUntil(lambda: app.endpoint is not None, timeout=10000)
    assert read_endpoint(app.locations) is not None
    review = app.review
    assert review is not None
    QTest.mouseClick(_menu_buttons(app)["Quit"], Qt.MouseButton.LeftButton)
    assert read_endpoint(app.locations) is None  # the instance stopped
    assert not review.isVisible()


def test_the_tray_snapshot_is_the_brokers_overview_in_one_read(
    broker: Broker, photoedit: Manifest, notesync: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed(broker, photoedit)
    broker.register(notesync)
    broker.ingest(photoedit.app_id, [EVENT])
    (closed,) = broker.close_batches(force=True)
    reads: list[str] = []
    inside: list[bool] = []  # while the overview reads (it counts the failures with failures_since)
    real = broker.overview

    def overview() -> object:
        reads.append("overview")
        inside.append(True)
        try:
            return real()
        finally:
            inside.pop()

    def only_inside(method: Callable[..., object]) -> Callable[..., object]:
        def call(*a: object, **k: object) -> object:
            if not inside:
                pytest.fail("the tray read more than the overview")
            return method(*a, **k)

        return call

    monkeypatch.setattr(broker, "overview", overview)
    for name in ("apps", "pending", "failures_since", "history"):
        monkeypatch.setattr(broker, name, only_inside(getattr(broker, name)))
    # Open deliveries are the ledger's since the broker stopped delegating to it.
    monkeypatch.setattr(
        broker.deliveries, "open_deliveries", lambda *a, **k: pytest.fail("the tray read more than the overview")
    )
    snapshot = take_snapshot(broker)
    assert reads == ["overview"]
    assert [(a.app_id, a.name) for a in snapshot.awaiting_consent] == [(notesync.app_id, "NoteSync")]
    assert [(b.batch_id, b.app_id) for b in snapshot.waiting] == [(closed.batch_id, photoedit.app_id)]
    assert snapshot.waiting_by_app() == {photoedit.app_id: 1} and snapshot.app_name(photoedit.app_id) == "PhotoEdit"
    assert snapshot.ready and snapshot.summary() == "1 batch waiting from 1 app; 1 new app asking to send"
