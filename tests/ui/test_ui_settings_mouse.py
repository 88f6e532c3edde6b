"""Settings used with the mouse alone: a click on an app's row is what selects it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from tests.support.keyrings import MemoryKeyring
from tests.ui.test_ui_settings import Confirmations, open_window, settle
from tray_app.core import Broker, Manifest
from tray_app.core.platform.autostart import XdgAutostart
from tray_app.core.platform.secrets import SecretStore
from tray_app.ui.settings_window import SettingsWindow


def click_row(window: SettingsWindow, app_id: str) -> None:
    """Click the middle of ``app_id``'s row, as a person does."""
    row = window.model.row_of(app_id)
    assert row >= 0
    rect = window.table.visualRect(window.model.index(row, 0))
    assert rect.isValid() and window.table.viewport().rect().contains(rect.center())
    QTest.mouseClick(window.table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center())


def test_clicking_an_apps_row_opens_its_settings(
    qtbot: QtBot, broker: Broker, photoedit: Manifest, notesync: Manifest, tmp_path: Path
) -> None:
    broker.register(photoedit)
    broker.register(notesync)
    confirm = Confirmations()
    window = open_window(
        qtbot, broker, SecretStore(MemoryKeyring()), XdgAutostart(tmp_path / "config", ["telemetry-tray"]), confirm
    )
    first = window.selected_app()
    assert first is not None  # the first row is selected on opening
    other = notesync if first.app_id == photoedit.app_id else photoedit
    click_row(window, other.app_id)
    assert window.selected_app() is not None and window.selected_app().app_id == other.app_id  # type: ignore[union-attr]
    assert window.detail_label.text().startswith(f"{other.name} by {other.vendor}: awaiting consent")
    for button in (window.policy_combo, window.allow_button, window.block_button, window.remove_button):
        assert button.isEnabled(), button.accessibleName()
    assert window.set_credentials_button.isEnabled() == (other is notesync)  # NoteSync's vendor needs a secret
    # And the buttons act on the app that was clicked.
    QTest.mouseClick(window.allow_button, Qt.MouseButton.LeftButton)
    settle(qtbot, window)
    assert broker.app(other.app_id).status == "allowed"
    assert broker.app(first.app_id).status == "awaiting_consent"
    # Clicking back on the first row follows it too.
    click_row(window, first.app_id)
    assert window.detail_label.text().startswith(f"{first.name} by {first.vendor}: awaiting consent")
    assert window.allow_button.isEnabled()
    settle(qtbot, window)
