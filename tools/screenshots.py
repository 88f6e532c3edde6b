"""Render each window with demo data to docs/screenshots/*.png (``make screenshots``).

Uses the example manifests and sample reports in a temporary home; draws offscreen.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from tray_app.core import Broker, Locations, load_manifest  # noqa: E402
from tray_app.core.platform.autostart import XdgAutostart  # noqa: E402
from tray_app.core.platform.secrets import SecretStore  # noqa: E402
from tray_app.ui.history_window import HistoryWindow  # noqa: E402
from tray_app.ui.review_window import ReviewWindow  # noqa: E402
from tray_app.ui.settings_window import SettingsWindow  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def wait(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def shoot(widget: QWidget, name: str, ms: int = 1500) -> None:
    widget.resize(1180, 760)
    widget.show()
    wait(ms)
    widget.grab().save(str(OUT / f"{name}.png"))
    print(f"wrote {OUT / name}.png")


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
        if day == 0:
            broker.approve(batches[0].batch_id)
        clock_now[0] += timedelta(days=1)
    return broker


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(sys.argv)
    with tempfile.TemporaryDirectory() as folder:
        broker = demo(Path(folder) / "home")
        review = ReviewWindow(broker)
        review.refresh()
        wait(500)
        review.show_app("org.example.photoedit")
        shoot(review, "review")
        review.show_app("net.notesync.desktop")
        shoot(review, "new-app")
        history = HistoryWindow(broker)
        history.refresh()
        shoot(history, "history")
        settings = SettingsWindow(broker, SecretStore(), XdgAutostart(Path(folder) / "config"))
        settings.refresh()
        shoot(settings, "settings")
        broker.close()
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
