"""Stuck deliveries in the tray: shown in the menu and in History, why in words, and what to
do about them (Retry now, Set credentials…, Withdraw…), with a real vendor on 127.0.0.1,
real SQLite and real clicks. Also: notifications paced per kind, and Settings kept current."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt, QThreadPool
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from tests.support.builders import Clock, allowed, tiny
from tests.support.fake_vendor import vendor
from tests.support.keyring_session import real_keyring
from tests.support.keyrings import MemoryKeyring
from tray_app.core import Broker, DeliveryLoop, Forwarder, Locations, Manifest, Outcome
from tray_app.core.platform.autostart import XdgAutostart
from tray_app.core.platform.secrets import SecretStore
from tray_app.ui.application import TrayApp
from tray_app.ui.history_window import HistoryWindow
from tray_app.ui.notices import Kind, Notices
from tray_app.ui.settings_window import CredentialsDialog
from tray_app.ui.tray import Tray, TrayMenu
from tray_app.ui.tray_snapshot import take_snapshot

TIMEOUT_MS = 10_000


def _dead_url() -> str:
    """A loopback address where nothing listens: connections are refused."""
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/batches"


def _approved(broker: Broker, app_id: str, reports: int = 2) -> str:
    broker.ingest(app_id, [{"event": f"e{n}"} for n in range(reports)])
    (closed,) = broker.close_batches(force=True)
    broker.approve(closed.batch_id)
    return closed.batch_id


def _send_due(broker: Broker) -> list[Outcome]:
    with closing(Forwarder(broker.deliveries, SecretStore(MemoryKeyring()))) as forwarder:
        return [o.outcome for o in forwarder.deliver_due()]


@pytest.fixture
def stuck(broker: Broker) -> dict[str, str]:
    """Two stuck deliveries: one retrying to a dead host, one waiting for credentials."""
    dead = tiny(endpoint=_dead_url())
    allowed(broker, dead)
    locked = tiny(app_id="org.example.locked", name="Locked", auth="bearer", endpoint=_dead_url())
    allowed(broker, locked)
    retrying, waiting = _approved(broker, dead.app_id), _approved(broker, locked.app_id)
    assert sorted(_send_due(broker)) == sorted([Outcome.RETRYING, Outcome.WAITING_FOR_CREDENTIALS])
    return {"retrying": retrying, "waiting": waiting, "dead": dead.app_id, "locked": locked.app_id}


def _click_action(qtbot: QtBot, menu: QMenu, text: str) -> None:
    """Move to and click the entry ``text`` of the open ``menu``, as a person does."""
    action = next((a for a in menu.actions() if a.text() == text), None)
    assert action is not None, [a.text() for a in menu.actions()]
    assert action.isEnabled(), text
    centre = menu.actionGeometry(action).center()
    QTest.mouseMove(menu, centre)
    QTest.mouseClick(menu, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)


def _open_submenu(qtbot: QtBot, menu: QMenu, text: str) -> QMenu:
    action = next(a for a in menu.actions() if a.text() == text)
    sub = action.menu()
    assert isinstance(sub, QMenu)
    _click_action(qtbot, menu, text)
    qtbot.waitUntil(sub.isVisible, timeout=TIMEOUT_MS)
    return sub


def test_the_tray_shows_each_stuck_delivery_why_in_words_and_what_to_do(
    qtbot: QtBot, broker: Broker, stuck: dict[str, str]
) -> None:
    actions = TrayMenu()
    tray = Tray(actions)
    tray.show_snapshot(take_snapshot(broker))
    summary = tray.snapshot.summary()
    assert "1 batch waiting for credentials" in summary and "1 delivery not getting through" in summary
    assert tray.state.name == "ERROR"
    assert "Tiny: nothing answers at 127.0.0.1" in tray.toolTip()
    tray.rebuild_menu()
    menu = tray.menu
    texts = [a.text() for a in menu.actions()]
    assert "Not delivered (2):" in texts
    assert "    Tiny: nothing answers at 127.0.0.1" in texts and "    Locked: waiting for credentials" in texts
    menu.popup(QPoint(10, 10))
    qtbot.waitUntil(menu.isVisible, timeout=TIMEOUT_MS)

    sub = _open_submenu(qtbot, menu, "    Tiny: nothing answers at 127.0.0.1")
    lines = [a.text() for a in sub.actions() if not a.isSeparator()]
    said = " ".join(a.text() for a in sub.actions() if not a.isEnabled() and not a.isSeparator())
    assert said.startswith("127.0.0.1 refused the connection") and "Tried once; next try in" in said
    for raw in ("Errno", "ConnectError", "T10:", "Z "):
        assert raw not in said
    assert lines[-3:] == ["Retry now", "Withdraw…", "Show in History…"]
    with qtbot.waitSignal(actions.retry, timeout=TIMEOUT_MS) as retry:
        _click_action(qtbot, sub, "Retry now")
    assert retry.args == [stuck["retrying"]]

    menu.popup(QPoint(10, 10))
    qtbot.waitUntil(menu.isVisible, timeout=TIMEOUT_MS)
    sub = _open_submenu(qtbot, menu, "    Locked: waiting for credentials")
    assert "Locked's vendor needs a secret, and none is stored." in " ".join(a.text() for a in sub.actions())
    with qtbot.waitSignal(actions.credentials, timeout=TIMEOUT_MS) as credentials:
        _click_action(qtbot, sub, "Set credentials…")
    assert credentials.args == [stuck["locked"]]
    menu.hide()


@pytest.fixture
def history(qtbot: QtBot, broker: Broker) -> Iterator[HistoryWindow]:
    window = HistoryWindow(broker)
    qtbot.addWidget(window)
    yield window
    QThreadPool.globalInstance().waitForDone(TIMEOUT_MS)


def _shown(qtbot: QtBot, window: HistoryWindow) -> None:
    with qtbot.waitSignal(window.loaded, timeout=TIMEOUT_MS):
        window.show()


def _select_delivery(qtbot: QtBot, window: HistoryWindow, batch_id: str) -> None:
    """Click the delivery's row in the list."""
    tree = window.deliveries
    item = next(i for i in window._delivery_items() if i.data(0, Qt.ItemDataRole.UserRole) == batch_id)
    rect = tree.visualItemRect(item)
    assert tree.viewport().rect().contains(rect.center())
    QTest.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center())
    selected = window.selected_delivery()
    assert selected is not None and selected.batch_id == batch_id


def test_history_lists_stuck_deliveries_and_says_why(
    qtbot: QtBot, history: HistoryWindow, stuck: dict[str, str]
) -> None:
    _shown(qtbot, history)
    assert history.deliveries_box.isVisible()
    assert history.deliveries_box.title() == "Approved, not delivered yet (2): 2 not getting through"
    rows = {row[0]: row for row in history.delivery_rows()}
    assert rows["Tiny"][2] == "Nothing answers at 127.0.0.1" and rows["Tiny"][3].startswith("tried once; next try in")
    assert rows["Locked"][2] == "Waiting for credentials"
    _select_delivery(qtbot, history, stuck["retrying"])
    detail = history.delivery_detail.text()
    assert detail.startswith("Tiny: 127.0.0.1 refused the connection") and "Retry now once the vendor is back" in detail
    assert "Errno" not in detail and "Errno" in history.delivery_detail.toolTip()  # the raw error, on request
    assert history.retry_button.isEnabled() and history.withdraw_button.isEnabled()
    assert not history.credentials_button.isVisible()
    _select_delivery(qtbot, history, stuck["waiting"])
    assert history.credentials_button.isVisible() and "Set credentials…" in history.delivery_detail.text()
    with qtbot.waitSignal(history.credentials_requested, timeout=TIMEOUT_MS) as asked:
        QTest.mouseClick(history.credentials_button, Qt.MouseButton.LeftButton)
    assert asked.args == [stuck["locked"]]
    # The approval's receipt says why its bytes are not delivered yet, not only "not delivered yet".
    approved = next(r for r in history.model.receipts() if r.batch_id == stuck["retrying"] and r.action == "approved")
    with qtbot.waitSignal(history.payload_shown, timeout=TIMEOUT_MS):
        history.select_seq(approved.seq)
    label = history.payload_label.text()
    assert "not delivered yet: 127.0.0.1 refused the connection" in label and "tried once" in label


def test_retry_now_in_history_sends_to_a_vendor_that_is_back(
    qtbot: QtBot, history: HistoryWindow, broker: Broker
) -> None:
    # The vendor is down for now (and asks for an hour), then it is back.
    with vendor([(503, {"Retry-After": "3600"}), 200]) as v:
        manifest = tiny(endpoint=v.url)
        allowed(broker, manifest)
        batch = _approved(broker, manifest.app_id)
        forwarder = Forwarder(broker.deliveries, SecretStore(MemoryKeyring()))
        loop = DeliveryLoop(forwarder)
        loop.start()
        try:
            qtbot.waitUntil(lambda: len(v.received) == 1, timeout=TIMEOUT_MS)
            qtbot.waitUntil(lambda: broker.undelivered() and broker.undelivered()[0].attempts == 1, timeout=TIMEOUT_MS)
            _shown(qtbot, history)
            (row,) = history.delivery_rows()
            assert row[2] == "127.0.0.1 is unavailable" and row[3] == "tried once; next try in about 1 hour"
            _select_delivery(qtbot, history, batch)
            with qtbot.waitSignal(history.delivery_done, timeout=TIMEOUT_MS):
                QTest.mouseClick(history.retry_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: broker.view(batch).batch.status == "delivered", timeout=TIMEOUT_MS)
        finally:
            loop.stop()
            forwarder.close()
        assert len(v.received) == 2 and v.received[0].body == v.received[1].body  # the same bytes, again
    history.refresh()  # the window reads again after its own change; once more after the send
    qtbot.waitUntil(lambda: [r.action for r in history.model.receipts()][-1] == "delivered", timeout=TIMEOUT_MS)
    assert not history.deliveries_box.isVisible()


def _confirmation(qtbot: QtBot, window: HistoryWindow) -> QMessageBox:
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "confirmation") is not None, timeout=TIMEOUT_MS)
    box = window.findChild(QMessageBox, "confirmation")
    assert isinstance(box, QMessageBox)
    qtbot.waitUntil(box.isVisible, timeout=TIMEOUT_MS)
    return box


def _click_button(box: QMessageBox, text: str) -> None:
    button = next(b for b in box.findChildren(QPushButton) if b.text().replace("&", "") == text)
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def test_withdraw_in_history_asks_then_discards_the_batch_and_nothing_is_sent(
    qtbot: QtBot, history: HistoryWindow, broker: Broker, stuck: dict[str, str]
) -> None:
    _shown(qtbot, history)
    _select_delivery(qtbot, history, stuck["retrying"])
    QTest.mouseClick(history.withdraw_button, Qt.MouseButton.LeftButton)
    box = _confirmation(qtbot, history)
    assert box.windowTitle() == "Withdraw Tiny's batch?"
    assert "nothing is sent" in box.text() and "127.0.0.1" in box.text()
    _click_button(box, "Cancel")  # changes nothing
    qtbot.waitUntil(lambda: history.findChild(QMessageBox, "confirmation") is None, timeout=TIMEOUT_MS)
    assert broker.view(stuck["retrying"]).batch.status == "approved"

    QTest.mouseClick(history.withdraw_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(history.delivery_done, timeout=TIMEOUT_MS):
        _click_button(_confirmation(qtbot, history), "Withdraw")
    assert broker.view(stuck["retrying"]).batch.status == "discarded"
    last = broker.history()[-1]
    assert (last.action, last.detail["reason"]) == ("discarded", "withdrawn")
    assert history.status_label.text() == "Withdrew Tiny's batch: nothing was sent to 127.0.0.1."
    qtbot.waitUntil(lambda: [r[0] for r in history.delivery_rows()] == ["Locked"], timeout=TIMEOUT_MS)
    assert _send_due(broker) == []  # never sent afterwards


def test_withdraw_while_the_bytes_are_on_the_wire_is_refused_with_the_reason(
    qtbot: QtBot, history: HistoryWindow, broker: Broker, clock: Clock, stuck: dict[str, str]
) -> None:
    _shown(qtbot, history)
    _select_delivery(qtbot, history, stuck["retrying"])
    # A sender takes it meanwhile (the window has not heard yet).
    clock.advance(hours=2)
    claims = broker.deliveries.claim("another-sender")
    assert stuck["retrying"] in {c.batch_id for c in claims}
    QTest.mouseClick(history.withdraw_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(history.problem, timeout=TIMEOUT_MS) as problem:
        _click_button(_confirmation(qtbot, history), "Withdraw")
    assert "being sent right now" in problem.args[0] and "on the wire" in problem.args[0]
    assert history.error_banner.isVisible()
    assert broker.view(stuck["retrying"]).batch.status == "approved"
    # Once the list shows it being sent, Withdraw is off for it.
    qtbot.waitUntil(lambda: not history.withdraw_button.isEnabled(), timeout=TIMEOUT_MS)


# -- the whole application: find and fix a stuck delivery without the command line ------


@pytest.fixture
def tray_app(qtbot: QtBot, tmp_path: Path) -> Iterator[TrayApp]:
    app = TrayApp(Locations.under(tmp_path / "home"), secrets=real_keyring(),
                  autostart=XdgAutostart(tmp_path / "config"))  # fmt: skip
    app.start()
    qtbot.waitUntil(lambda: app.endpoint is not None, timeout=TIMEOUT_MS)
    yield app
    app.quit()


def _register(app: TrayApp, manifest: Manifest) -> None:
    assert app.endpoint is not None
    request = urllib.request.Request(app.endpoint.url + "/v1/apps", data=json.dumps(manifest.to_obj()).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201


def test_a_batch_waiting_for_credentials_is_fixed_from_the_tray(qtbot: QtBot, tray_app: TrayApp) -> None:
    broker = tray_app.broker
    assert broker is not None
    with vendor([200]) as v:
        manifest = tiny(app_id="org.example.needs", name="Needs", auth="bearer", endpoint=v.url)
        allowed(broker, manifest)
        batch = _approved(broker, manifest.app_id)
        try:
            # The running instance tries at once, and holds it: no secret is stored.
            qtbot.waitUntil(lambda: [s.delivery.batch_id for s in tray_app.snapshot.stuck] == [batch],
                            timeout=TIMEOUT_MS)  # fmt: skip
            # The menu's Set credentials… opens Settings at that app, asking for its secret.
            tray_app.menu_actions.credentials.emit(manifest.app_id)
            settings = tray_app.settings
            assert settings is not None
            qtbot.waitUntil(lambda: settings.findChild(CredentialsDialog) is not None, timeout=TIMEOUT_MS)
            dialog = settings.findChild(CredentialsDialog)
            assert isinstance(dialog, CredentialsDialog) and dialog.windowTitle() == "Credentials for Needs"
            qtbot.waitUntil(dialog.isVisible, timeout=TIMEOUT_MS)
            qtbot.keyClicks(dialog.secret_edit, "s3cret-token-value")
            QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: broker.view(batch).batch.status == "delivered", timeout=TIMEOUT_MS)
            assert v.received[-1].headers["authorization"] == "Bearer s3cret-token-value"
            qtbot.waitUntil(lambda: tray_app.snapshot.stuck == (), timeout=TIMEOUT_MS)
        finally:
            tray_app.secrets.clear(manifest.app_id)


def test_withdraw_in_the_tray_menu_asks_in_history(qtbot: QtBot, tray_app: TrayApp) -> None:
    broker = tray_app.broker
    assert broker is not None
    manifest = tiny(endpoint=_dead_url())
    allowed(broker, manifest)
    batch = _approved(broker, manifest.app_id)
    qtbot.waitUntil(lambda: [s.delivery.batch_id for s in tray_app.snapshot.stuck] == [batch], timeout=TIMEOUT_MS)
    tray_app.menu_actions.withdraw.emit(batch)
    history = tray_app.history
    assert history is not None and history.isVisible()
    box = _confirmation(qtbot, history)
    assert box.windowTitle() == "Withdraw Tiny's batch?"
    with qtbot.waitSignal(history.delivery_done, timeout=TIMEOUT_MS):
        _click_button(box, "Withdraw")
    assert broker.view(batch).batch.status == "discarded"
    qtbot.waitUntil(lambda: tray_app.snapshot.stuck == (), timeout=TIMEOUT_MS)  # the tray heard of it


def test_settings_shows_an_app_that_registers_while_it_is_open(qtbot: QtBot, tray_app: TrayApp) -> None:
    tray_app.open_settings()
    settings = tray_app.settings
    assert settings is not None
    qtbot.waitUntil(lambda: settings.snapshot is not None and not settings.busy, timeout=TIMEOUT_MS)
    assert settings.model.rowCount() == 0
    _register(tray_app, tiny(app_id="org.example.arrives", name="Arrives"))
    qtbot.waitUntil(lambda: settings.model.row_of("org.example.arrives") >= 0, timeout=TIMEOUT_MS)


# -- notifications ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_kind_of_notice_has_its_own_pace(qtbot: QtBot, broker: Broker, photoedit: Manifest) -> None:
    clock = FakeClock()
    notices = Notices(clock=clock, every={Kind.APPS: 0.4, Kind.BATCHES: 600, Kind.STUCK: 600, Kind.FAILED: 600})
    told: list[tuple[str, str]] = []
    notices.notice.connect(lambda kind, text: told.append((kind, text)))
    allowed(broker, photoedit)
    broker.ingest(photoedit.app_id, [{"event": "crop", "app_version": "3.1.4"}])
    broker.close_batches(force=True)
    notices.consider(take_snapshot(broker))
    assert told == [("batches", "A batch from PhotoEdit waits for your review.")]
    # A new app right after: its own notice, though a batch notice was just shown.
    broker.register(tiny(app_id="org.example.first", name="First"))
    clock.now += 5
    notices.consider(take_snapshot(broker))
    assert told[-1] == ("apps", "First asks to send telemetry. Open the review to allow or block it.")
    # A second new app within the pace of its kind: told when its time comes, not lost.
    broker.register(tiny(app_id="org.example.second", name="Second"))
    broker.ingest(photoedit.app_id, [{"event": "crop", "app_version": "3.1.4"}])
    broker.close_batches(force=True)  # and another batch: within ten minutes, it waits
    clock.now += 0.1
    notices.consider(take_snapshot(broker))
    assert len(told) == 2 and notices.waiting(Kind.APPS) and notices.waiting(Kind.BATCHES)
    clock.now += 0.4
    qtbot.waitUntil(lambda: len(told) == 3, timeout=TIMEOUT_MS)
    assert told[-1] == ("apps", "Second asks to send telemetry. Open the review to allow or block it.")
    # Nothing new: nothing more (what was told is not told again).
    notices.consider(take_snapshot(broker))
    qtbot.wait(600)
    assert len(told) == 3 and notices.waiting(Kind.BATCHES)


def test_a_second_new_app_gets_a_notification_from_the_tray(qtbot: QtBot, tmp_path: Path) -> None:
    app = TrayApp(Locations.under(tmp_path / "home"), autostart=XdgAutostart(tmp_path / "config"))
    app.tray = Tray(app.menu_actions)  # the offscreen platform has no tray: the notices go to this icon
    app.notices._every[Kind.APPS] = 0.3
    shown: list[tuple[str, str]] = []
    app.notified.connect(lambda kind, text: shown.append((kind, text)))
    app.start()
    try:
        qtbot.waitUntil(lambda: app.endpoint is not None and app.snapshot.ready, timeout=TIMEOUT_MS)
        _register(app, tiny(app_id="org.example.one", name="One"))
        qtbot.waitUntil(lambda: ("apps", "One asks to send telemetry. Open the review to allow or block it.")
                        in shown, timeout=TIMEOUT_MS)  # fmt: skip
        _register(app, tiny(app_id="org.example.two", name="Two"))
        qtbot.waitUntil(lambda: any("Two asks" in text for _, text in shown), timeout=TIMEOUT_MS)
        # With notifications off, none.
        assert app.broker is not None
        app.broker.set_preference("notifications", "off")
        before = len(shown)
        time.sleep(0.35)
        _register(app, tiny(app_id="org.example.three", name="Three"))
        qtbot.waitUntil(lambda: "org.example.three" in {a.app_id for a in app.snapshot.awaiting_consent},
                        timeout=TIMEOUT_MS)  # fmt: skip
        qtbot.wait(700)
        assert len(shown) == before
    finally:
        app.quit()
        QApplication.processEvents()


def test_the_words_of_a_delivery_use_no_raw_error_in_the_history_table(
    qtbot: QtBot, history: HistoryWindow, stuck: dict[str, str]
) -> None:
    _shown(qtbot, history)
    retrying = next(r for r in history.model.receipts() if r.action == "retrying")
    row = history.model.row_of(retrying.seq)
    assert row is not None
    summary = history.model.index(row, history.model.SUMMARY).data()
    assert summary.startswith("no answer: 127.0.0.1 refused the connection") and "Errno" not in summary


def test_before_approving_the_tray_can_say_that_credentials_cannot_be_had(
    broker: Broker, notesync: Manifest, tmp_path: Path, qtbot: QtBot, stuck: dict[str, str]
) -> None:
    from keyring.backends import fail

    from tray_app.ui.settings_window import SettingsWindow, credentials_note

    broker.register(notesync)
    app = broker.app(notesync.app_id)
    memory = MemoryKeyring()
    note = credentials_note(app, SecretStore(memory))
    assert note.startswith("NoteSync Ltd needs a secret to receive NoteSync's batches, and none is stored yet.")
    assert note.endswith("until it is set. Set it in Settings with Set credentials….")
    SecretStore(memory).set(notesync.app_id, "a-secret")
    assert credentials_note(app, SecretStore(memory)) == ""
    no_keyring = credentials_note(app, SecretStore(fail.Keyring()))
    assert "no OS keyring is available to hold it" in no_keyring and "never kept anywhere else" in no_keyring
    assert credentials_note(broker.app(stuck["dead"]), SecretStore(fail.Keyring())) == ""  # needs no secret
    # Settings says how many batches wait for an app's credentials.
    settings = SettingsWindow(broker, SecretStore(MemoryKeyring()), XdgAutostart(tmp_path / "config"))
    qtbot.addWidget(settings)
    settings.show()
    qtbot.waitUntil(lambda: settings.snapshot is not None and not settings.busy, timeout=TIMEOUT_MS)
    row = settings.model.row_of(stuck["locked"])
    assert settings.model.index(row, settings.model.COLUMNS.index("Credentials")).data() == "none (1 waiting)"
