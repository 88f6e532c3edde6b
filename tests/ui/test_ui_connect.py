"""Connecting an OpenTelemetry app from Settings, and a taken OTLP port in the tray: real
widgets offscreen, real mouse clicks, the real OS keyring (tests/support/keyring_session.py)
and, for the port, a real instance hosted by the tray application."""

from __future__ import annotations

import shlex
import socket
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from tests.support.builders import MANIFESTS
from tests.support.keyring_session import real_keyring
from tests.ui.test_ui_settings import Confirmations, settle
from tests.ui.test_ui_settings_mouse import click_row
from tray_app.core import AuthError, Broker, Credentials, Locations, Manifest, SecretStore, load_manifest
from tray_app.core.platform.autostart import XdgAutostart
from tray_app.ui.application import TrayApp
from tray_app.ui.settings_window import SettingsWindow
from tray_app.ui.tray import Tray

OTLP_URL = "http://127.0.0.1:4318"


@pytest.fixture
def keyring(broker: Broker) -> Iterator[SecretStore]:
    store = real_keyring()
    yield store
    # The real keyring outlives the test: leave nothing of this home in it.
    store.clear_app_token("org.inkwell.notes", Credentials(broker, store).home)


@pytest.fixture
def notes() -> Manifest:
    return load_manifest(MANIFESTS / "otel-notes.toml")


def connect_window(qtbot: QtBot, broker: Broker, keyring: SecretStore, tmp_path: Path) -> SettingsWindow:
    window = SettingsWindow(
        broker,
        keyring,
        XdgAutostart(tmp_path / "config", ["telemetry-tray"]),
        confirm=Confirmations(),
        otlp_address=lambda: (OTLP_URL, ""),
    )
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.snapshot is not None and not window.busy)
    return window


def click_connect(qtbot: QtBot, window: SettingsWindow) -> dict[str, str]:
    """Click *Copy connection lines* as a person does; the clipboard's lines, as a shell sets them."""
    QGuiApplication.clipboard().clear()
    assert window.connect_button.isEnabled()
    QTest.mouseClick(window.connect_button, Qt.MouseButton.LeftButton)
    settle(qtbot, window)
    copied = QGuiApplication.clipboard().text()
    assert copied and copied == window.connect_text.toPlainText()
    assert window.connect_text.isVisible() and window.connect_text.isReadOnly()
    variables = {}
    for line in copied.splitlines():
        name, _, value = line.partition("=")
        [variables[name]] = shlex.split(value)
    return variables


def test_copy_connection_lines_copies_a_token_that_works_and_stays_the_same(
    qtbot: QtBot, broker: Broker, keyring: SecretStore, notes: Manifest, photoedit: Manifest, tmp_path: Path
) -> None:
    registered = broker.register(notes).token
    broker.register(photoedit)
    window = connect_window(qtbot, broker, keyring, tmp_path)
    click_row(window, photoedit.app_id)
    assert not window.connect_button.isEnabled()  # PhotoEdit has no [otlp] table: nothing to connect
    assert "[otlp]" in window.connect_button.toolTip()
    click_row(window, notes.app_id)
    first = click_connect(qtbot, window)
    assert first["OTEL_EXPORTER_OTLP_ENDPOINT"] == OTLP_URL
    assert first["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert first["OTEL_SERVICE_NAME"] == "inkwell-notes"
    assert first["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"] == "delta"
    token = first["OTEL_EXPORTER_OTLP_HEADERS"].removeprefix("Authorization=Bearer%20")
    assert broker.authenticate(token).app_id == notes.app_id
    with pytest.raises(AuthError):
        broker.authenticate(registered)  # replaced, and the window says so
    assert window.banner.isVisible() and "no longer works" in window.banner_label.text()
    assert token not in window.banner_label.text()
    # A second click: the token kept in the keyring, the same lines, nothing replaced.
    second = click_connect(qtbot, window)
    assert second == first
    assert "no longer works" not in window.banner_label.text()
    assert broker.authenticate(token).app_id == notes.app_id
    # Another app selected: the lines (and their token) are no longer on screen.
    click_row(window, photoedit.app_id)
    assert not window.connect_text.isVisible() and window.connect_text.toPlainText() == ""


@pytest.fixture
def taken_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = int(holder.getsockname()[1])
        monkeypatch.setenv("TELEMETRY_TRAY_OTLP_PORT", str(port))
        yield port


def test_a_taken_otlp_port_is_said_in_the_tray_menu_and_tooltip(qtbot: QtBot, tmp_path: Path, taken_port: int) -> None:
    tray_app = TrayApp(Locations.under(tmp_path / "home"), autostart=XdgAutostart(tmp_path / "config"))
    tray_app.start()
    try:
        qtbot.waitUntil(lambda: tray_app.snapshot.ready, timeout=15000)
        # The rest works: the native endpoint serves.
        assert tray_app.endpoint is not None and tray_app.broker is not None
        line = (
            f"The OpenTelemetry (OTLP/HTTP) port {taken_port} is in use by another program, so OpenTelemetry "
            "apps cannot reach Telemetry Tray"
        )
        # The offscreen platform has no system tray: the icon and its menu, built as a tray builds
        # them, from the application's own snapshot.
        tray = Tray(tray_app.menu_actions)
        tray.show_snapshot(tray_app.snapshot)
        tray.menu.aboutToShow.emit()  # what opening the menu does first
        entries = [action for action in tray.menu.actions() if not action.isSeparator()]
        texts = [action.text() for action in entries]
        assert texts[0] == "Nothing is waiting for you" and texts[1] == line
        assert not entries[1].isEnabled()  # a statement, not a command
        assert "TELEMETRY_TRAY_OTLP_PORT" in entries[1].toolTip()
        assert tray.toolTip().startswith("Telemetry Tray: Nothing is waiting for you\n" + line)
        # Without a tray, the window standing in for it says it.
        assert tray_app.review is not None and line in tray_app.review.banner.text()
        # And connect (Settings) names the port the receiver will have, with why it cannot now.
        url, problem = tray_app.otlp_address()
        assert url == f"http://127.0.0.1:{taken_port}" and problem.startswith(line)
    finally:
        tray_app.quit()


def test_a_free_otlp_port_adds_no_line(qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_TRAY_OTLP_PORT", "0")
    tray_app = TrayApp(Locations.under(tmp_path / "home"), autostart=XdgAutostart(tmp_path / "config"))
    tray_app.start()
    try:
        qtbot.waitUntil(lambda: tray_app.snapshot.ready, timeout=15000)
        tray = Tray(tray_app.menu_actions)
        tray.show_snapshot(tray_app.snapshot)
        tray.menu.aboutToShow.emit()
        assert not any("OpenTelemetry" in action.text() for action in tray.menu.actions())
        assert "\n" not in tray.toolTip()
        url, problem = tray_app.otlp_address()
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0") and problem == ""
    finally:
        tray_app.quit()
