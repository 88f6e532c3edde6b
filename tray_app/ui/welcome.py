"""The welcome, which is also Help and About: what Telemetry Tray is for, where its icon
lives, and *Load the demo apps*. Shown once on the first run (with a tray; without one
the review window, which stands in for the icon, greets instead) and from the menu's
*Help and About…*."""

from __future__ import annotations

import html
import sys

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .. import __version__

__all__ = ["WelcomeWindow", "where_the_icon_is"]


def where_the_icon_is(has_tray: bool, platform: str = sys.platform) -> str:
    """Where to find Telemetry Tray on this desktop, in a sentence."""
    if not has_tray:
        return (
            "This desktop shows no system tray, so the review window stands in for the icon, with the "
            "menu's entries along its top. Closing it does not stop Telemetry Tray; starting it again "
            "brings the window back."
        )
    if platform == "darwin":
        where = "Its icon is in the menu bar, at the top right of the screen."
    elif platform == "win32":
        where = (
            "Its icon is in the notification area at the bottom right, by the clock (if it is not there, "
            "click the ^ arrow beside it)."
        )
    else:
        where = "Its icon is in the system tray of your panel, usually by the clock."
    return (
        f"{where} Click it to review what waits; right-click it for the menu: History, Settings, Pause "
        "all telemetry, this help, and Quit. Closing a window does not stop Telemetry Tray."
    )


class WelcomeWindow(QWidget):
    """What Telemetry Tray is for, where it lives, and the way into the demo."""

    demo_requested = Signal()
    review_requested = Signal()

    def __init__(self, has_tray: bool) -> None:
        super().__init__()
        self.setWindowTitle("Welcome to Telemetry Tray")
        self.setAccessibleName("Welcome to Telemetry Tray")
        self.text = QLabel(_welcome_html(has_tray))
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setWordWrap(True)
        self.text.setAccessibleName("What Telemetry Tray is for and where it lives")
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.demo_note = QLabel("")
        self.demo_note.setWordWrap(True)
        self.demo_note.setTextFormat(Qt.TextFormat.PlainText)
        self.demo_note.setAccessibleName("The demo")
        self.demo_button = QPushButton("Load the &demo apps")
        self.demo_button.setAccessibleName("Load the demo apps, a demo vendor and sample reports")
        self.demo_button.clicked.connect(self._demo)
        self.review_button = QPushButton("Open the &review window")
        self.review_button.setAccessibleName("Open the review window")
        self.review_button.clicked.connect(self.review_requested)
        self.close_button = QPushButton("&Close")
        self.close_button.setAccessibleName("Close this window")
        self.close_button.clicked.connect(self.close)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.close)

        self.version = QLabel(
            f"Version {html.escape(__version__)} · Apache-2.0 · <tt>telemetry-tray --help</tt> for the command line"
        )
        self.version.setTextFormat(Qt.TextFormat.RichText)
        self.version.setAccessibleName("Version and licence")

        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.demo_note)
        layout.addStretch(1)
        layout.addWidget(self.version)
        buttons = QHBoxLayout()
        buttons.addWidget(self.demo_button)
        buttons.addWidget(self.review_button)
        buttons.addStretch()
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        self.set_demo(loaded=False)
        self.resize(620, 330)

    def set_demo(self, *, loaded: bool) -> None:
        """Offer the demo, or say it is loaded (and where to go from here)."""
        self.demo_button.setVisible(not loaded)
        self.demo_button.setEnabled(not loaded)
        self.demo_note.setText(
            "The demo is loaded: the review window has its batches, its button opens the demo vendor's "
            "page, and Remove the demo takes it all away again."
            if loaded
            else "Try it: the demo loads three example apps, a stream of sample reports, and a demo vendor "
            "on this computer whose page shows exactly what arrived. Nothing leaves this machine."
        )

    def _demo(self) -> None:
        self.demo_button.setEnabled(False)
        self.demo_requested.emit()


def _welcome_html(has_tray: bool) -> str:
    return (
        "<h3>Telemetry Tray</h3>"
        "<p>Programs that support Telemetry Tray hand it their telemetry instead of sending it over the "
        "Internet. It keeps each batch on this computer, shows you exactly what would be sent, and sends "
        "only what you approve: all of it, fewer fields, coarser values, or just counts. Apps ask before "
        "they may send anything, and you can block them.</p>"
        f"<p><b>Where it lives.</b> {html.escape(where_the_icon_is(has_tray))}</p>"
    )
