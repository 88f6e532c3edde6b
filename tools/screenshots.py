"""Render each window with demo data to docs/screenshots/*.png (``make screenshots``).

Uses the example manifests and sample reports in a temporary home; draws offscreen. Three
sets, each in a process of its own (the offscreen platform's screen is fixed when Qt starts):

* ``NAME.png``: a 1600×1000 screen, the light palette;
* ``NAME-1366x768.png``: a 1366×768 screen, each window as it opens there, drawn on the
  screen (grey) so a window that does not fit shows it;
* ``NAME-dark.png``: a 1600×1000 screen with a dark palette.

Each set runs in the Europe/Berlin time zone, so the pictures show local time, not UTC.
``tools/screenshots.py --variant NAME`` renders one set in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QPoint, Qt, QTimer  # noqa: E402
from PySide6.QtGui import QColor, QGuiApplication, QPainter, QPalette, QPixmap  # noqa: E402
from PySide6.QtWidgets import QApplication, QStyleFactory, QWidget  # noqa: E402

from tray_app.core import Broker, Locations, from_iso, load_manifest  # noqa: E402
from tray_app.core.platform.autostart import XdgAutostart  # noqa: E402
from tray_app.core.platform.secrets import SecretStore  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
VARIANTS = {"default": ((1600, 1000), ""), "small": ((1366, 768), "-1366x768"), "dark": ((1600, 1000), "-dark")}


def wait(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def dark_palette() -> QPalette:
    """A dark palette as a dark desktop theme gives it (Fusion's roles, dark values)."""
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#2b2b2b", QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1f1f1f", QPalette.ColorRole.AlternateBase: "#282828",
        QPalette.ColorRole.Text: "#e6e6e6", QPalette.ColorRole.Button: "#353535",
        QPalette.ColorRole.ButtonText: "#e6e6e6", QPalette.ColorRole.Highlight: "#3d7cd9",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.Link: "#7aa7ff",
        QPalette.ColorRole.ToolTipBase: "#353535", QPalette.ColorRole.ToolTipText: "#e6e6e6",
        QPalette.ColorRole.PlaceholderText: "#8c8c8c", QPalette.ColorRole.Light: "#4a4a4a",
        QPalette.ColorRole.Midlight: "#3e3e3e", QPalette.ColorRole.Mid: "#2f2f2f",
        QPalette.ColorRole.Dark: "#1a1a1a", QPalette.ColorRole.Shadow: "#000000",
    }  # fmt: skip
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    return palette


class Camera:
    """Takes the pictures of one set."""

    def __init__(self, suffix: str, on_screen: bool) -> None:
        self.suffix = suffix
        self.on_screen = on_screen

    def shoot(self, widget: QWidget, name: str, ms: int = 1500) -> None:
        """``widget`` as it opens (sized and placed for the screen by the window itself)."""
        widget.show()
        widget.raise_()
        widget.activateWindow()
        wait(ms)
        picture = widget.grab()
        if self.on_screen:
            picture = self._on_screen(widget, picture)
        path = OUT / f"{name}{self.suffix}.png"
        picture.save(str(path))
        print(f"wrote {path}")

    def shoot_pixmap(self, picture: QPixmap, name: str) -> None:
        path = OUT / f"{name}{self.suffix}.png"
        picture.save(str(path))
        print(f"wrote {path}")

    @staticmethod
    def _on_screen(widget: QWidget, picture: QPixmap) -> QPixmap:
        """The window drawn where it is on its screen, the rest of the screen grey."""
        screen = QGuiApplication.primaryScreen().geometry()
        canvas = QPixmap(screen.size())
        canvas.fill(QColor("#7f7f7f"))
        painter = QPainter(canvas)
        frame = widget.frameGeometry()
        painter.fillRect(frame.translated(-screen.topLeft()), QColor("#404040"))  # the frame a window manager adds
        painter.drawPixmap(widget.geometry().topLeft() - screen.topLeft(), picture)
        painter.setPen(QColor("#ffffff"))
        painter.drawText(8, screen.height() - 8, f"screen {screen.width()}×{screen.height()}")
        painter.end()
        return canvas


def demo(home: Path) -> Broker:
    clock_now = [datetime(2026, 11, 24, 9, 0, tzinfo=UTC)]
    broker = Broker.open(Locations.under(home), lambda: clock_now[0])
    photo = load_manifest(ROOT / "resources" / "manifests" / "photoedit.toml")
    notes = load_manifest(ROOT / "resources" / "manifests" / "notes-sync.json")
    broker.register(photo)
    broker.register(notes)
    broker.set_consent(photo.app_id, True)
    rng = random.Random(5)
    events = ["open", "export", "crop", "filter", "crash"]
    for day in range(3):
        reports = [
            {
                "event": rng.choice(events),
                "ts": (clock_now[0] + timedelta(minutes=rng.randrange(600))).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "app_version": rng.choice(["3.1.4", "3.1.3"]),
                "duration_ms": rng.randrange(20, 4000),
                "os_version": rng.choice(["Debian 12", "Fedora 41", "Windows 11 23H2"]),
                "gpu_accelerated": rng.random() < 0.6,
                "install_id": f"{rng.getrandbits(48):012x}",
                "account_email": "sam@example.net",
                "window_title": "holiday-photos.jpg",
            }
            for _ in range(40)
        ]
        broker.ingest(photo.app_id, reports)
        batches = broker.close_batches(force=True)
        if day == 0:  # approved and delivered
            broker.approve(batches[0].batch_id)
            for claim in broker.deliveries.claim("screenshots"):
                broker.deliveries.finish(claim, status=200, request_id="req-7f3a", elapsed_ms=84.0)
        if day == 1:
            broker.approve(batches[0].batch_id)
        clock_now[0] += timedelta(days=1)
    # The second approved batch meets a vendor that is down: a stuck delivery, tried seven
    # times (recorded as the forwarder records a refused connection; nothing is sent).
    for _ in range(7):
        due = min(from_iso(d.next_attempt_at) for d in broker.undelivered())
        clock_now[0] = max(clock_now[0], due)
        for claim in broker.deliveries.claim("screenshots", limit=1):
            broker.deliveries.finish(claim, status=None, error="ConnectError: [Errno 111] Connection refused")
    clock_now[0] += timedelta(seconds=30)
    return broker


def render(variant: str) -> int:
    from tray_app.ui.history_window import HistoryWindow
    from tray_app.ui.review_window import ReviewWindow
    from tray_app.ui.settings_window import SettingsWindow
    from tray_app.ui.tray import Tray, TrayMenu
    from tray_app.ui.tray_snapshot import take_snapshot

    OUT.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(sys.argv)
    assert isinstance(app, QApplication)
    app.setStyle(QStyleFactory.create("Fusion"))
    if variant == "dark":
        app.setPalette(dark_palette())
    camera = Camera(VARIANTS[variant][1], on_screen=variant == "small")
    with tempfile.TemporaryDirectory() as folder:
        broker = demo(Path(folder) / "home")
        review = ReviewWindow(broker)
        review.refresh()
        wait(500)
        review.show_app("org.example.photoedit")
        camera.shoot(review, "review")
        review.show_app("net.notesync.desktop")
        camera.shoot(review, "new-app")
        review.hide()
        history = HistoryWindow(broker)
        history.refresh()
        camera.shoot(history, "history")
        history.hide()
        settings = SettingsWindow(broker, SecretStore(), XdgAutostart(Path(folder) / "config"))
        settings.refresh()
        camera.shoot(settings, "settings")
        settings.hide()
        if variant != "small":
            camera.shoot_pixmap(tray_menu(Tray(TrayMenu()), take_snapshot(broker)), "tray-menu-stuck")
        broker.close()
    return 0


def tray_menu(tray: object, snapshot: object) -> QPixmap:
    """The tray menu with its first stuck delivery's submenu open, side by side."""
    from tray_app.ui.tray import Tray

    assert isinstance(tray, Tray)
    tray.show_snapshot(snapshot)  # type: ignore[arg-type]
    tray.rebuild_menu()
    menu = tray.menu
    menu.popup(QPoint(0, 0))
    wait(300)
    sub = next(a.menu() for a in menu.actions() if a.menu() is not None)
    menu.setActiveAction(sub.menuAction())
    sub.popup(QPoint(menu.width(), 0))
    wait(300)
    first, second = menu.grab(), sub.grab()
    canvas = QPixmap(first.width() + second.width() + 8, max(first.height(), second.height()))
    canvas.fill(Qt.GlobalColor.transparent)
    painter = QPainter(canvas)
    painter.drawPixmap(0, 0, first)
    painter.drawPixmap(first.width() + 8, 0, second)
    painter.end()
    sub.hide()
    menu.hide()
    return canvas


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Render the windows to docs/screenshots/.")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help="render one set here (default: every set)")
    args = parser.parse_args(argv)
    if args.variant:
        return render(args.variant)
    with tempfile.TemporaryDirectory() as folder:
        for variant, ((width, height), _suffix) in VARIANTS.items():
            config = Path(folder) / f"{variant}.json"
            screen = {"name": "screen", "x": 0, "y": 0, "width": width, "height": height,
                      "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}  # fmt: skip
            config.write_text(json.dumps({"screens": [screen]}))
            env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}", "TZ": "Europe/Berlin"}
            done = subprocess.run([sys.executable, __file__, "--variant", variant], env=env, check=False)  # noqa: S603 - this script
            if done.returncode:
                return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
