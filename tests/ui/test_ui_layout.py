"""Layout and look: windows fit the screen they open on (also a real 1366×768 one), the review
keeps its divider and columns, the scope table gets the room, batches of one window are told
apart, times are local, colours follow a dark palette, and the focus outline shows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect, Qt, QThreadPool
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from tests.support.builders import ROOT, Clock, allowed
from tests.support.keyrings import MemoryKeyring
from tray_app.core import Broker, Manifest
from tray_app.core.platform.autostart import XdgAutostart
from tray_app.core.platform.secrets import SecretStore
from tray_app.ui.history_window import HistoryModel, HistoryWindow
from tray_app.ui.look import FocusRing, batch_labels, contrast, ring_colour
from tray_app.ui.review_window import ReviewWindow
from tray_app.ui.settings_window import SettingsWindow

TIMEOUT_MS = 10_000
EVENT = {"event": "crop", "app_version": "3.1.4"}


def _inside(rect: QRect, area: QRect) -> bool:
    return area.contains(rect.topLeft()) and area.contains(rect.bottomRight())


def _global(widget: QWidget) -> QRect:
    return QRect(widget.mapToGlobal(QPoint(0, 0)), widget.size())


@pytest.fixture
def apps(broker: Broker, photoedit: Manifest, notesync: Manifest) -> str:
    """PhotoEdit allowed with a batch to review; NoteSync asking for consent."""
    allowed(broker, photoedit)
    broker.register(notesync)
    broker.ingest(photoedit.app_id, [EVENT] * 3)
    (closed,) = broker.close_batches(force=True)
    return closed.batch_id


def test_history_and_settings_fit_the_screen_they_open_on(
    qtbot: QtBot, broker: Broker, apps: str, tmp_path: Path
) -> None:
    area = QGuiApplication.primaryScreen().availableGeometry()  # offscreen: 800×800
    history = HistoryWindow(broker)
    settings = SettingsWindow(broker, SecretStore(MemoryKeyring()), XdgAutostart(tmp_path / "config"))
    for window in (history, settings):
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: settings.snapshot is not None and not settings.busy, timeout=TIMEOUT_MS)
    for window, close in ((history, history.close_button), (settings, settings.close_button)):
        assert _inside(window.frameGeometry(), area), (type(window).__name__, window.frameGeometry(), area)
        assert _inside(_global(close), area) and close.isVisible()
    QThreadPool.globalInstance().waitForDone(TIMEOUT_MS)


ON_A_SMALL_SCREEN = r"""
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
from tests.support.builders import allowed
from tests.support.keyrings import MemoryKeyring
from tray_app.core import Broker, Locations, load_manifest
from tray_app.core.platform.autostart import XdgAutostart
from tray_app.core.platform.secrets import SecretStore
from tray_app.ui.history_window import HistoryWindow
from tray_app.ui.review_window import ReviewWindow
from tray_app.ui.settings_window import SettingsWindow

home = Path(tempfile.mkdtemp())
broker = Broker.open(Locations.under(home / "home"))
photo = load_manifest(Path(sys.argv[1]) / "resources" / "manifests" / "photoedit.toml")
allowed(broker, photo)
broker.register(load_manifest(Path(sys.argv[1]) / "resources" / "manifests" / "notes-sync.json"))
broker.ingest(photo.app_id, [{"event": "crop", "app_version": "3.1.4"}])
broker.close_batches(force=True)

def rect(r):
    return [r.x(), r.y(), r.width(), r.height()]

def on_screen(widget):
    return rect(QRect(widget.mapToGlobal(QPoint(0, 0)), widget.size()))

windows = {
    "history": HistoryWindow(broker),
    "settings": SettingsWindow(broker, SecretStore(MemoryKeyring()), XdgAutostart(home / "config")),
    "review": ReviewWindow(broker),
}
found = {"screen": rect(app.primaryScreen().availableGeometry())}
for name, window in windows.items():
    window.show()
    for _ in range(20):
        app.processEvents()
    found[name] = rect(window.frameGeometry())
found["history_close"] = on_screen(windows["history"].close_button)
found["settings_close"] = on_screen(windows["settings"].close_button)
found["review_buttons"] = on_screen(windows["review"].approve_button)
print(json.dumps(found))
"""


def test_on_a_1366x768_screen_every_window_and_its_buttons_are_on_screen(tmp_path: Path) -> None:
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "laptop", "x": 0, "y": 0, "width": 1366, "height": 768,
                                               "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))  # fmt: skip
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}", "TELEMETRY_TRAY_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", ON_A_SMALL_SCREEN, str(ROOT)], env=env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    screen = QRect(*found["screen"])
    assert screen.size().width() == 1366 and screen.size().height() == 768
    for name in ("history", "settings", "review", "history_close", "settings_close", "review_buttons"):
        assert _inside(QRect(*found[name]), screen), (name, found[name])
    # Room is kept for the window manager's title bar: no window takes the whole height.
    for name in ("history", "settings", "review"):
        assert QRect(*found[name]).height() <= 768 - 40, (name, found[name])


@pytest.fixture
def review(qtbot: QtBot, broker: Broker) -> Iterator[ReviewWindow]:
    window = ReviewWindow(broker)
    qtbot.addWidget(window)
    window.resize(1100, 720)
    window.show()
    qtbot.waitExposed(window)
    yield window
    QThreadPool.globalInstance().waitForDone(TIMEOUT_MS)


def _loaded(qtbot: QtBot, window: ReviewWindow, batch_id: str) -> None:
    window.refresh(select=f"batch:{batch_id}")
    qtbot.waitUntil(lambda: window._current is not None and window._current.batch.batch_id == batch_id,
                    timeout=TIMEOUT_MS)  # fmt: skip
    qtbot.waitUntil(lambda: window.approve_button.isEnabled(), timeout=TIMEOUT_MS)


def test_the_review_divider_stays_put_and_reports_and_status_show(
    qtbot: QtBot, review: ReviewWindow, apps: str, notesync: Manifest, local_zone: None
) -> None:
    # In a zone off UTC a day's window reads "2026-11-24 05:30 to …": long labels.
    _loaded(qtbot, review, apps)
    before = review.splitter.sizes()
    review.show_app(notesync.app_id)  # the consent question: another page, other widths
    qtbot.waitUntil(lambda: review.pages.currentIndex() == 2, timeout=TIMEOUT_MS)
    QApplication.processEvents()
    assert review.splitter.sizes() == before
    review.show_app("org.example.photoedit")
    qtbot.waitUntil(lambda: review.pages.currentIndex() == 1, timeout=TIMEOUT_MS)
    QApplication.processEvents()
    assert review.splitter.sizes() == before
    header = review.tree.header()
    width = review.tree.viewport().width()
    for column in (1, 2):  # Reports and Status
        assert not header.isSectionHidden(column)
        assert header.sectionViewportPosition(column) + header.sectionSize(column) <= width, column
        assert header.sectionSize(column) >= header.sectionSizeHint(column) - 2


def test_a_notice_takes_only_its_lines_and_the_scope_table_gets_the_room(
    qtbot: QtBot, review: ReviewWindow, apps: str
) -> None:
    _loaded(qtbot, review, apps)
    review.show_notice("One line of news.")
    QApplication.processEvents()
    banner = review.banner
    assert banner.height() <= banner.heightForWidth(banner.width()) + 4, (banner.height(), banner.sizeHint())
    rows = review.scope_model.rowCount()
    row_height = review.scope_view.verticalHeader().defaultSectionSize()
    shown = review.scope_view.viewport().height() // row_height
    assert shown >= min(rows, 7), (shown, rows)


def test_batches_of_one_window_get_labels_that_differ(broker: Broker, clock: Clock, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    for _ in range(3):  # three batches of one day: "close now" twice
        broker.ingest(photoedit.app_id, [EVENT])
        broker.close_batches(force=True)
        clock.advance(hours=2)
    broker.ingest(photoedit.app_id, [EVENT])  # and one still collecting
    pending = broker.pending()
    assert len({(b.window_start, b.window_end) for b in pending}) == 1
    labels = batch_labels(pending)
    assert len(set(labels.values())) == 4, labels
    assert all(label.startswith("2026-11-24") for label in labels.values())
    assert any(label.endswith("–now") for label in labels.values())


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30, no summer time
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_history_shows_local_time(qtbot: QtBot, broker: Broker, apps: str, local_zone: None) -> None:
    broker.approve(apps)
    window = HistoryWindow(broker)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.loaded, timeout=TIMEOUT_MS):
        window.show()
    index = window.proxy.index(0, HistoryModel.WHEN)
    assert index.data() == "2026-11-24 16:00:00"  # 10:30 UTC
    assert index.data(Qt.ItemDataRole.ToolTipRole).startswith("2026-11-24 16:00:00 local time (2026-11-24T10:30:00Z)")
    (row,) = window.delivery_rows()
    assert row[1].startswith("2026-11-24 05:30") and "00:00" not in row[1]  # the UTC day, in local time
    QThreadPool.globalInstance().waitForDone(TIMEOUT_MS)


# -- a dark palette ----------------------------------------------------------------------


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, colour in {
        QPalette.ColorRole.Window: "#2b2b2b", QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1f1f1f", QPalette.ColorRole.AlternateBase: "#282828",
        QPalette.ColorRole.Text: "#e6e6e6", QPalette.ColorRole.Button: "#353535",
        QPalette.ColorRole.ButtonText: "#e6e6e6", QPalette.ColorRole.Highlight: "#3d7cd9",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.Link: "#7aa7ff",
        QPalette.ColorRole.PlaceholderText: "#8c8c8c",
    }.items():  # fmt: skip
        palette.setColor(role, QColor(colour))
    return palette


@pytest.fixture
def dark(qapp: QApplication) -> Iterator[QPalette]:
    before = qapp.palette()
    palette = dark_palette()
    qapp.setPalette(palette)
    yield palette
    qapp.setPalette(before)


def _style_colours(sheet: str, selector_part: str = "") -> tuple[QColor, QColor]:
    """The (text, background) colours a style sheet sets, in that order found."""
    text = re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6})", sheet)
    background = re.search(r"background:\s*(#[0-9a-fA-F]{6})", sheet)
    assert text is not None and background is not None, sheet
    return QColor(text.group(1)), QColor(background.group(1))


def test_with_a_dark_palette_every_colour_reads(
    qtbot: QtBot, broker: Broker, apps: str, dark: QPalette, tmp_path: Path
) -> None:
    broker.approve(apps)
    window = HistoryWindow(broker)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.loaded, timeout=TIMEOUT_MS):
        window.show()
    base = dark.color(QPalette.ColorRole.Base)
    for row in range(window.proxy.rowCount()):
        brush = window.proxy.index(row, HistoryModel.ACTION).data(Qt.ItemDataRole.ForegroundRole)
        assert contrast(brush.color(), base) >= 4.5, brush.color().name()
    window.show_error(RuntimeError("the disk is full"))
    QApplication.processEvents()
    sheet = window.error_banner.styleSheet()
    background = QColor(re.search(r"background:\s*(#[0-9a-fA-F]{6})", sheet).group(1))  # type: ignore[union-attr]
    text = QColor(re.search(r"QLabel \{ color:\s*(#[0-9a-fA-F]{6})", sheet).group(1))  # type: ignore[union-attr]
    assert background.lightnessF() < 0.5 and contrast(text, background) >= 4.5
    # What is drawn: the banner's own pixels are dark, not a light pink on a dark window.
    image = window.error_banner.grab().toImage()
    assert image.pixelColor(6, image.height() // 2).lightnessF() < 0.5
    window._set_status("⚠ History check FAILED", "bad")
    status_text, status_background = _style_colours(window.status_label.styleSheet())
    assert contrast(status_text, status_background) >= 4.5

    settings = SettingsWindow(broker, SecretStore(MemoryKeyring()), XdgAutostart(tmp_path / "config"))
    qtbot.addWidget(settings)
    settings.show()
    qtbot.waitUntil(lambda: settings.snapshot is not None and not settings.busy, timeout=TIMEOUT_MS)
    settings._show_banner("Keyring locked.", error=True)
    QApplication.processEvents()
    assert settings.banner.grab().toImage().pixelColor(6, 6).lightnessF() < 0.5

    review = ReviewWindow(broker)
    qtbot.addWidget(review)
    for error in (False, True):
        review.show_notice("Something happened.", error=error)
        text, background = _style_colours(review.banner.styleSheet())
        assert contrast(text, background) >= 4.5, review.banner.styleSheet()
    QThreadPool.globalInstance().waitForDone(TIMEOUT_MS)


# -- the focus outline -------------------------------------------------------------------


def _ring(window: QWidget) -> FocusRing:
    ring = window.findChild(FocusRing, "focusRing")
    assert isinstance(ring, FocusRing)
    return ring


def test_the_keyboard_focus_has_a_visible_outline(qtbot: QtBot, broker: Broker, apps: str, tmp_path: Path) -> None:
    window = SettingsWindow(broker, SecretStore(MemoryKeyring()), XdgAutostart(tmp_path / "config"))
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(lambda: window.snapshot is not None and not window.busy, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=TIMEOUT_MS)
    window.table.setFocus(Qt.FocusReason.OtherFocusReason)
    QTest.keyClick(window.table, Qt.Key.Key_Tab)  # to the policy choice, by the keyboard
    focused = QApplication.focusWidget()
    assert focused is not None and focused is not window.table
    ring = _ring(window)
    assert ring.isVisible() and ring.target is focused
    around = QRect(focused.mapTo(window, QPoint(0, 0)), focused.size())
    assert ring.geometry().contains(around) and ring.geometry() != around
    # The ring is drawn, in a colour that stands out from the window (3:1 at least).
    colour = ring_colour(window.palette())
    assert contrast(colour, window.palette().color(QPalette.ColorRole.Window)) >= 3.0
    image = window.grab().toImage()
    top_middle = QPoint(ring.geometry().center().x(), ring.geometry().top() + 1)
    drawn = image.pixelColor(top_middle)
    assert (
        abs(drawn.red() - colour.red()) + abs(drawn.green() - colour.green()) + abs(drawn.blue() - colour.blue()) < 60
    )
    # Moving on with the keyboard moves the ring; a click does not show it.
    QTest.keyClick(focused, Qt.Key.Key_Tab)
    assert ring.target is QApplication.focusWidget() and ring.isVisible()
    spin = window.retention_spin
    QTest.mouseClick(spin, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(10, spin.height() // 2))
    assert QApplication.focusWidget() is spin and not ring.isVisible()
    QThreadPool.globalInstance().waitForDone(TIMEOUT_MS)
