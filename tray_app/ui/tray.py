"""The tray icon and its menu.

The menu is rebuilt each time it opens (``aboutToShow``), from the last snapshot the
application took in the background, so opening it never waits on the database. Its
standing entries (*Pause all telemetry*, *History…*, *Settings…*, *Quit*) are actions
:class:`TrayMenu` makes once: the window shown when there is no system tray offers the
very same ones.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from .icons import TrayState, tray_icon
from .tray_snapshot import Snapshot


class TrayMenu(QObject):
    """What the menu asks the application to do, and the standing entries that ask it.

    The entries are defined here once and shown in the tray menu and, without a system
    tray, in the fallback window (:meth:`standing`)."""

    review = Signal(str)  # an app id, or "" for all
    pause = Signal(bool)
    history = Signal()
    settings = Signal()
    quit = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pause_action = QAction("Pause all telemetry", self)
        self.pause_action.setCheckable(True)
        # Signal to signal, so no closure keeps this object alive. triggered, not toggled:
        # showing a snapshot checks the entry without asking for a change.
        self.pause_action.triggered.connect(self.pause)
        self.history_action = QAction("History…", self)
        self.history_action.triggered.connect(self.history)
        self.settings_action = QAction("Settings…", self)
        self.settings_action.triggered.connect(self.settings)
        self.quit_action = QAction("Quit", self)
        self.quit_action.triggered.connect(self.quit)
        self.show_snapshot(Snapshot())

    def standing(self) -> list[QAction]:
        """The entries that are always there, in menu order."""
        return [self.pause_action, self.history_action, self.settings_action, self.quit_action]

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Check and enable the entries as ``snapshot`` says (nothing is asked for)."""
        self.pause_action.setChecked(snapshot.overview.paused_all)
        # Until the instance has started there is nothing to pause, show or set.
        for action in (self.pause_action, self.history_action, self.settings_action):
            action.setEnabled(snapshot.ready)


class Tray(QSystemTrayIcon):
    def __init__(self, actions: TrayMenu) -> None:
        super().__init__()
        self.actions = actions
        self.snapshot = Snapshot()
        self.menu = QMenu()
        self.menu.setAccessibleName("Telemetry Tray")
        self.menu.setToolTipsVisible(True)  # a problem's whole sentence, under its short line
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.setContextMenu(self.menu)
        self.activated.connect(self._activated)
        self.rebuild_menu()
        self.show_snapshot(self.snapshot)

    def show_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.actions.show_snapshot(snapshot)
        # macOS draws menu-bar icons from a mask in the panel's own colour.
        count = len(snapshot.waiting) + len(snapshot.awaiting_consent)
        self.setIcon(tray_icon(self.state, count, mask=sys.platform == "darwin"))
        self.setToolTip(snapshot.tooltip())

    @property
    def state(self) -> TrayState:
        s = self.snapshot
        if s.problem or s.overview.failed_recently or s.overview.waiting_for_credentials:
            return TrayState.ERROR
        if s.overview.paused_all:
            return TrayState.PAUSED
        if s.waiting or s.awaiting_consent:
            return TrayState.WAITING
        return TrayState.QUIET

    def rebuild_menu(self) -> None:
        s, menu = self.snapshot, self.menu
        menu.clear()
        status = menu.addAction(s.summary())
        status.setEnabled(False)
        if s.otlp_line:
            otlp = menu.addAction(s.otlp_line)
            otlp.setEnabled(False)
            otlp.setToolTip(s.otlp_problem)
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
        # The shared entries: clear() above takes them out of the menu but does not delete them.
        pause, history, settings, quit_ = self.actions.standing()
        menu.addActions([pause, history, settings])
        menu.addSeparator()
        menu.addAction(quit_)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.actions.review.emit("")
