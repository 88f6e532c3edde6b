"""The tray icon in a real X11 system tray: Xvfb with trayer as the tray host.

Runs the check in its own process (the xcb platform, not offscreen). Needs the Debian
packages xvfb and trayer; without them it skips (in CI a skip is a failure).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.builders import ROOT

pytestmark = pytest.mark.slow

CHECK = r"""
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QSystemTrayIcon
from tray_app.ui.tray_snapshot import Snapshot
from tray_app.ui.tray import Tray, TrayMenu

app = QApplication(sys.argv)
if not QSystemTrayIcon.isSystemTrayAvailable():
    print("no tray available"); sys.exit(3)
tray = Tray(TrayMenu())
tray.show_snapshot(Snapshot(ready=True))
tray.show()
result = {}

def check():
    geometry = tray.geometry()
    result["docked"] = tray.isVisible() and geometry.width() > 0 and geometry.height() > 0
    tray.menu.aboutToShow.emit()  # what opening the menu does first
    tray.menu.popup(geometry.center())
    QTimer.singleShot(300, opened)

def opened():
    result["menu"] = tray.menu.isVisible() and len(tray.menu.actions()) > 5
    tray.menu.hide()
    print("docked" if result["docked"] else "not docked", "menu" if result["menu"] else "no menu", flush=True)
    app.exit(0 if result["docked"] and result["menu"] else 4)

QTimer.singleShot(1500, check)
sys.exit(app.exec())
"""


@pytest.fixture
def x_display(tmp_path: Path) -> Iterator[str]:
    missing = [tool for tool in ("Xvfb", "trayer") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} (Debian packages xvfb, trayer) for a real tray host")
    display = f":{90 + os.getpid() % 50}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    env = {**os.environ, "DISPLAY": display}
    time.sleep(1.0)
    trayer = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "200",
                               "--height", "32", "--transparent", "false"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1.0)
    try:
        yield display
    finally:
        trayer.terminate()
        xvfb.terminate()
        trayer.wait(5)
        xvfb.wait(5)


def test_the_icon_docks_in_a_real_tray_and_its_menu_opens(x_display: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(DISPLAY=x_display, QT_QPA_PLATFORM="xcb")
    result = subprocess.run([sys.executable, "-c", CHECK], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, (result.stdout, result.stderr[-2000:])
    assert result.stdout.strip() == "docked menu"
