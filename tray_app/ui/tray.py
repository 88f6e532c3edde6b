"""The tray icon and its menu.

The menu is rebuilt each time it opens (``aboutToShow``), from the last snapshot the
application took in the background, so opening it never waits on the database.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from .icons import TrayState, tray_icon
from .state import Snapshot


class TrayMenu(QObject):
    """What the menu asks the application to do."""

    review = Signal(str)  # an app id, or "" for all
    pause = Signal(bool)
    history = Signal()
    settings = Signal()
    quit = Signal()


class Tray(QSystemTrayIcon):
    def __init__(self, actions: TrayMenu) -> None:
        super().__init__()
        self.actions = actions
        self.snapshot = Snapshot()
        self.menu = QMenu()
        self.menu.setAccessibleName("Telemetry Tray")
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.setContextMenu(self.menu)
        self.activated.connect(self._activated)
        self.rebuild_menu()
        self.show_snapshot(self.snapshot)

    def show_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        # macOS draws menu-bar icons from a mask in the panel's own colour.
        count = len(snapshot.waiting) + len(snapshot.awaiting_consent)
        self.setIcon(tray_icon(self.state, count, mask=sys.platform == "darwin"))
        self.setToolTip(f"Telemetry Tray: {snapshot.summary()}")

    @property
    def state(self) -> TrayState:
        s = self.snapshot
        if s.problem or s.failed_deliveries or s.waiting_for_credentials:
            return TrayState.ERROR
        if s.paused_all:
            return TrayState.PAUSED
        if s.waiting or s.awaiting_consent:
            return TrayState.WAITING
        return TrayState.QUIET

    def rebuild_menu(self) -> None:
        s, menu = self.snapshot, self.menu
        menu.clear()
        status = menu.addAction(s.summary())
        status.setEnabled(False)
        menu.addSeparator()
        waiting = len(s.waiting) + len(s.awaiting_consent)
        review = menu.addAction(f"Review pending ({waiting})…" if waiting else "Review pending…")
        review.triggered.connect(lambda: self.actions.review.emit(""))
        for app in s.awaiting_consent:
            action = menu.addAction(f"    {app.name} asks to send telemetry…")
            action.triggered.connect(lambda _=False, a=app.app_id: self.actions.review.emit(a))
        for app_id, count in sorted(s.waiting_by_app().items()):
            action = menu.addAction(f"    {s.app_name(app_id)} ({count})…")
            action.triggered.connect(lambda _=False, a=app_id: self.actions.review.emit(a))
        menu.addSeparator()
        pause = QAction("Pause all telemetry", menu)
        pause.setCheckable(True)
        pause.setChecked(s.paused_all)
        pause.setEnabled(s.ready)
        pause.toggled.connect(self.actions.pause.emit)
        menu.addAction(pause)
        menu.addAction("History…").triggered.connect(self.actions.history.emit)
        menu.addAction("Settings…").triggered.connect(self.actions.settings.emit)
        menu.addSeparator()
        menu.addAction("Quit").triggered.connect(self.actions.quit.emit)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.actions.review.emit("")
