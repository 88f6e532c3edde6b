"""The Settings window against a real broker, an in-memory keyring and a temporary autostart folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QApplication, QComboBox, QLabel, QLineEdit, QWidget
from pytestqt.qtbot import QtBot

from tests.support.keyrings import MemoryKeyring
from tray_app.core import Broker, Manifest
from tray_app.core.platform.autostart import UnsupportedAutostart, XdgAutostart
from tray_app.core.platform.secrets import SERVICE, SecretStore
from tray_app.ui.settings_window import APP_ID_ROLE, AppsModel, CredentialsDialog, SettingsWindow, scope_summary

SECRET = "tok-7c1e99a0d4b2f3-very-secret"
CREDENTIALS = AppsModel.COLUMNS.index("Credentials")
POLICY = AppsModel.COLUMNS.index("Policy")


class Confirmations:
    """Stands in for the confirmation dialog: records the question, gives the answer."""

    def __init__(self) -> None:
        self.answer = True
        self.asked: list[str] = []
        self.texts: list[tuple[str, str]] = []  # each question's text and its button

    def __call__(self, parent: QWidget, title: str, text: str, action: str) -> bool:
        self.asked.append(title)
        self.texts.append((text, action))
        return self.answer


@pytest.fixture
def keyring() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def autostart(tmp_path: Path) -> XdgAutostart:
    return XdgAutostart(tmp_path / "config", ["telemetry-tray"])


@pytest.fixture
def confirm() -> Confirmations:
    return Confirmations()


def open_window(
    qtbot: QtBot, broker: Broker, secrets: SecretStore, autostart: object, confirm: Confirmations
) -> SettingsWindow:
    window = SettingsWindow(broker, secrets, autostart, confirm=confirm)  # type: ignore[arg-type]
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.snapshot is not None and not window.busy)
    return window


@pytest.fixture
def window(
    qtbot: QtBot,
    broker: Broker,
    photoedit: Manifest,
    notesync: Manifest,
    keyring: MemoryKeyring,
    autostart: XdgAutostart,
    confirm: Confirmations,
) -> Iterator[SettingsWindow]:
    broker.register(photoedit)
    broker.register(notesync)
    window = open_window(qtbot, broker, SecretStore(keyring), autostart, confirm)
    yield window
    settle(qtbot, window)


def settle(qtbot: QtBot, window: SettingsWindow) -> None:
    """Wait until the background work (the change and the read after it) is done."""
    qtbot.waitUntil(lambda: not window.busy)


def cell(window: SettingsWindow, app_id: str, column: int) -> str:
    row = window.model.row_of(app_id)
    assert row >= 0, f"{app_id} is not in the table"
    return str(window.model.index(row, column).data())


def open_credentials(qtbot: QtBot, window: SettingsWindow) -> CredentialsDialog:
    """Click Set credentials for the selected app, as a person does: the dialog it shows."""
    qtbot.mouseClick(window.set_credentials_button, Qt.MouseButton.LeftButton)
    dialog = window.findChild(CredentialsDialog)
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    return dialog


def test_shows_the_apps(window: SettingsWindow, photoedit: Manifest, notesync: Manifest) -> None:
    model = window.model
    assert model.rowCount() == 2
    assert {model.index(r, 0).data(APP_ID_ROLE) for r in range(2)} == {photoedit.app_id, notesync.app_id}
    assert cell(window, notesync.app_id, 4) == "metrics.notesync.net"
    assert cell(window, notesync.app_id, POLICY) == "Ask"
    assert cell(window, notesync.app_id, 2) == "Awaiting consent"
    # Identifying fields start excluded: 6 of 7; started_at by day, notes_count bucketed.
    assert cell(window, notesync.app_id, 5) == "6 of 7 fields, notes_count bucketed, started_at by day, records"
    assert cell(window, notesync.app_id, CREDENTIALS) == "none"
    assert cell(window, photoedit.app_id, CREDENTIALS) == "not needed"
    assert "OS keyring" in window.keyring_label.text()
    assert not window.banner.isVisible()


def test_scope_summary_says_aggregate(broker: Broker, photoedit: Manifest) -> None:
    broker.register(photoedit)
    app = broker.app(photoedit.app_id)
    scope = app.scope.edited(
        app.manifest, exclude=["duration_ms", "gpu_accelerated"], coarsen={"ts": "day"}, mode="aggregate"
    )
    # install_id (pseudonymous) and account_email (identifying) start excluded.
    assert scope_summary(scope, photoedit) == "4 of 8 fields, ts by day, aggregate"


def test_policy_combo_sets_the_policy(qtbot: QtBot, window: SettingsWindow, broker: Broker, notesync: Manifest) -> None:
    changes: list[None] = []
    window.changed.connect(lambda: changes.append(None))
    assert window.select_app(notesync.app_id)
    combo = window.policy_combo
    assert combo.currentData() == "ask"
    combo.setCurrentIndex(combo.findData("approve"))
    settle(qtbot, window)
    assert broker.app(notesync.app_id).policy == "approve"
    assert cell(window, notesync.app_id, POLICY) == "Approve automatically"
    assert changes
    # And by keyboard: focus the combo, arrow down.
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    settle(qtbot, window)
    assert broker.app(notesync.app_id).policy == "discard"
    assert window.selected_app() is not None
    assert window.selected_app().app_id == notesync.app_id  # type: ignore[union-attr]
    assert combo.currentData() == "discard"


def test_allow_and_block(
    qtbot: QtBot, window: SettingsWindow, broker: Broker, photoedit: Manifest, confirm: Confirmations
) -> None:
    window.select_app(photoedit.app_id)
    qtbot.mouseClick(window.allow_button, Qt.MouseButton.LeftButton)
    settle(qtbot, window)
    assert broker.app(photoedit.app_id).status == "allowed"
    assert not window.allow_button.isEnabled()
    confirm.answer = False
    qtbot.mouseClick(window.block_button, Qt.MouseButton.LeftButton)
    settle(qtbot, window)
    assert broker.app(photoedit.app_id).status == "allowed"
    confirm.answer = True
    qtbot.mouseClick(window.block_button, Qt.MouseButton.LeftButton)
    settle(qtbot, window)
    assert broker.app(photoedit.app_id).status == "blocked"
    assert cell(window, photoedit.app_id, 2) == "Blocked"
    assert confirm.asked == ["Block PhotoEdit?", "Block PhotoEdit?"]


def test_block_says_how_many_reports_it_deletes(
    qtbot: QtBot, window: SettingsWindow, broker: Broker, photoedit: Manifest, confirm: Confirmations
) -> None:
    broker.set_consent(photoedit.app_id, True)
    broker.ingest(photoedit.app_id, [{"event": "crop", "ts": "2026-11-24T10:00:00Z"}] * 3)
    window.refresh()
    settle(qtbot, window)
    window.select_app(photoedit.app_id)
    confirm.answer = False
    qtbot.mouseClick(window.block_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(confirm.texts), timeout=5000)
    text, action = confirm.texts[-1]
    assert "Blocking deletes 3 reports waiting here" in text and action == "Block and delete 3 reports"
    settle(qtbot, window)
    assert broker.app(photoedit.app_id).status == "allowed"  # asked, answered no: nothing changed


def test_retention_spin(qtbot: QtBot, window: SettingsWindow, broker: Broker) -> None:
    spin = window.retention_spin
    assert spin.value() == broker.retention_days == 30
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "90")
    assert broker.retention_days == 30  # applied when editing finishes, not per keystroke
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    settle(qtbot, window)
    assert broker.retention_days == 90
    assert spin.value() == 90


def test_pause_all(qtbot: QtBot, window: SettingsWindow, broker: Broker) -> None:
    assert not window.pause_all_check.isChecked()
    window.pause_all_check.click()
    settle(qtbot, window)
    assert broker.paused_all
    window.pause_all_check.click()
    settle(qtbot, window)
    assert not broker.paused_all


def test_preferences(qtbot: QtBot, window: SettingsWindow, broker: Broker) -> None:
    assert window.notifications_check.isChecked()
    assert window.new_app_prompts_check.isChecked()
    window.notifications_check.click()
    settle(qtbot, window)
    assert broker.preference("notifications") == "off"
    window.new_app_prompts_check.click()
    settle(qtbot, window)
    assert broker.preference("new_app_prompts") == "off"
    assert not window.notifications_check.isChecked()


def test_start_at_login(qtbot: QtBot, window: SettingsWindow, broker: Broker, autostart: XdgAutostart) -> None:
    assert not window.start_at_login_check.isChecked()
    window.start_at_login_check.click()
    settle(qtbot, window)
    assert autostart.path.is_file()
    assert "Exec=telemetry-tray" in autostart.path.read_text().splitlines()
    assert broker.preference("start_at_login") == "on"
    window.start_at_login_check.click()
    settle(qtbot, window)
    assert not autostart.path.exists()
    assert broker.preference("start_at_login") == "off"


def test_start_at_login_unsupported_shows_why(
    qtbot: QtBot, broker: Broker, keyring: MemoryKeyring, confirm: Confirmations
) -> None:
    window = open_window(qtbot, broker, SecretStore(keyring), UnsupportedAutostart("darwin"), confirm)
    window.start_at_login_check.click()
    settle(qtbot, window)
    assert window.banner.isVisible()
    assert window.banner_label.text().startswith("Start at login: Starting at login is not supported")
    assert "Traceback" not in window.banner_label.text()
    assert not window.start_at_login_check.isChecked()  # back to what is true
    assert broker.preference("start_at_login") == "off"


def widget_texts() -> list[str]:
    texts = []
    for widget in QApplication.allWidgets():
        texts += [widget.windowTitle(), widget.toolTip(), widget.accessibleName(), widget.accessibleDescription()]
        if isinstance(widget, QLabel | QLineEdit | QAbstractButton):
            texts.append(widget.text())
        if isinstance(widget, QLineEdit):
            texts.append(widget.displayText())
        if isinstance(widget, QComboBox):
            texts += [widget.itemText(i) for i in range(widget.count())]
    return texts


def model_texts(model: AppsModel) -> list[str]:
    roles = [*range(0, 16), APP_ID_ROLE]
    return [
        str(model.index(r, c).data(role))
        for r in range(model.rowCount())
        for c in range(model.columnCount())
        for role in roles
    ]


def test_set_and_clear_credentials(
    qtbot: QtBot, window: SettingsWindow, broker: Broker, keyring: MemoryKeyring, notesync: Manifest
) -> None:
    app_id = notesync.app_id
    window.select_app(app_id)
    assert window.set_credentials_button.isEnabled()
    assert not window.clear_credentials_button.isEnabled()
    dialog = open_credentials(qtbot, window)
    assert dialog.secret_edit.echoMode() == QLineEdit.EchoMode.Password
    qtbot.keyClicks(dialog.secret_edit, SECRET)
    assert SECRET not in dialog.secret_edit.displayText()
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert dialog.secret_edit.text() == ""  # cleared as soon as it was taken
    settle(qtbot, window)
    qtbot.waitUntil(lambda: window.findChild(CredentialsDialog) is None)  # deleted
    assert keyring.items == {(SERVICE, app_id): [SECRET]}
    assert cell(window, app_id, CREDENTIALS) == "stored"
    assert window.banner_label.text().startswith("Credentials for NoteSync are stored")
    # The secret is shown nowhere: not in the model, not in any widget.
    assert not any(SECRET in text for text in model_texts(window.model))
    assert not any(SECRET in text for text in widget_texts())

    assert window.clear_credentials_button.isEnabled()
    qtbot.mouseClick(window.clear_credentials_button, Qt.MouseButton.LeftButton)
    settle(qtbot, window)
    assert keyring.items == {}
    assert cell(window, app_id, CREDENTIALS) == "none"


def test_cancelled_credentials_store_nothing(
    qtbot: QtBot, window: SettingsWindow, keyring: MemoryKeyring, notesync: Manifest
) -> None:
    window.select_app(notesync.app_id)
    dialog = open_credentials(qtbot, window)
    qtbot.keyClicks(dialog.secret_edit, SECRET)
    qtbot.keyClick(dialog.secret_edit, Qt.Key.Key_Escape)
    assert dialog.secret_edit.text() == ""
    settle(qtbot, window)
    assert keyring.items == {}


def test_invalid_secret_is_refused_without_repeating_it(
    qtbot: QtBot, window: SettingsWindow, keyring: MemoryKeyring, notesync: Manifest
) -> None:
    window.select_app(notesync.app_id)
    dialog = open_credentials(qtbot, window)
    bad = " spaced-secret-ü "
    dialog.secret_edit.setText(bad)
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    settle(qtbot, window)
    assert keyring.items == {}
    assert window.banner.isVisible()
    assert window.banner_label.text().startswith("Invalid secret: ")
    assert "spaced-secret" not in window.banner_label.text()


def test_credentials_not_needed(window: SettingsWindow, photoedit: Manifest) -> None:
    window.select_app(photoedit.app_id)
    assert not window.set_credentials_button.isEnabled()
    assert not window.clear_credentials_button.isEnabled()


def test_no_keyring(
    qtbot: QtBot, broker: Broker, notesync: Manifest, autostart: XdgAutostart, confirm: Confirmations
) -> None:
    broker.register(notesync)
    window = open_window(qtbot, broker, SecretStore(fail.Keyring()), autostart, confirm)
    assert cell(window, notesync.app_id, CREDENTIALS) == "keyring unavailable"
    assert window.keyring_label.text().startswith("No OS keyring is available")
    window.select_app(notesync.app_id)
    assert not window.set_credentials_button.isEnabled()


def test_remove_app(
    qtbot: QtBot,
    window: SettingsWindow,
    broker: Broker,
    keyring: MemoryKeyring,
    photoedit: Manifest,
    notesync: Manifest,
    confirm: Confirmations,
) -> None:
    window.select_app(photoedit.app_id)
    confirm.answer = False
    qtbot.mouseClick(window.remove_button, Qt.MouseButton.LeftButton)
    settle(qtbot, window)
    assert photoedit.app_id in {a.app_id for a in broker.apps()}
    confirm.answer = True
    qtbot.mouseClick(window.remove_button, Qt.MouseButton.LeftButton)
    settle(qtbot, window)
    assert [a.app_id for a in broker.apps()] == [notesync.app_id]
    assert window.model.rowCount() == 1
    assert confirm.asked == ["Remove PhotoEdit?", "Remove PhotoEdit?"]
    # Removing an app with stored credentials clears them from the keyring too.
    keyring.set_password(SERVICE, notesync.app_id, SECRET)
    window.refresh()
    settle(qtbot, window)
    assert window.select_app(notesync.app_id)
    qtbot.mouseClick(window.remove_button, Qt.MouseButton.LeftButton)
    settle(qtbot, window)
    assert broker.apps() == []
    assert keyring.items == {}
    assert window.empty_label.isVisible()
    assert not window.remove_button.isEnabled()


def test_every_control_has_an_accessible_name(window: SettingsWindow) -> None:
    from PySide6.QtWidgets import QAbstractSpinBox, QTableView

    kinds = (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QTableView)
    controls = [w for w in window.findChildren(QWidget) if isinstance(w, kinds) and w.parent() is not None]
    # Inner editors of spin boxes and combo boxes, and the table's corner button, are parts of their control.
    controls = [w for w in controls if not isinstance(w.parent(), QAbstractSpinBox | QComboBox | QTableView)]
    nameless = [f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}" for w in controls if not w.accessibleName()]
    assert nameless == []


def test_removing_an_app_clears_a_secret_the_window_had_not_seen(
    qtbot: QtBot, window: SettingsWindow, broker: Broker, keyring: MemoryKeyring, notesync: Manifest,
    confirm: Confirmations,
) -> None:  # fmt: skip
    # The keyring may have been locked when the window last looked: the secret must still
    # go, or it would be sent for the next app registering under this id.
    assert window.select_app(notesync.app_id)
    keyring.set_password(SERVICE, notesync.app_id, SECRET)  # stored since the window's last look
    confirm.answer = True
    qtbot.mouseClick(window.remove_button, Qt.MouseButton.LeftButton)
    settle(qtbot, window)
    assert notesync.app_id not in {a.app_id for a in broker.apps()}
    assert keyring.items == {}


def test_the_tray_words_every_remedy_without_the_cli() -> None:
    from tray_app.core import Remedy, TrayError
    from tray_app.ui.remedies import UI_REMEDIES, told

    assert set(UI_REMEDIES) == set(Remedy)
    error = TrayError("PhotoEdit is not allowed to send telemetry yet.", remedy=Remedy.ALLOW_APP, app_id="x")
    assert told(error) == "PhotoEdit is not allowed to send telemetry yet. Allow it first in Settings."
    assert all("telemetry-tray" not in words for words in UI_REMEDIES.values())
