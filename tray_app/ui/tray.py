"""The tray icon and its menu.

The menu is rebuilt each time it opens (``aboutToShow``), from the last snapshot the
application took in the background, so opening it never waits on the database. Its
standing entries (*Pause all telemetry*, *History…*, *Settings…*, *Help and About…*,
*Quit*) are actions
:class:`TrayMenu` makes once: the window shown when there is no system tray offers the
very same ones.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from ..core import DeliveryAction
from .icons import TrayState, tray_icon
from .local_time import window_words
from .tray_snapshot import Snapshot

# What each thing a person can do about a stuck delivery is called in the menu.
_ACTION_TEXT = {
    DeliveryAction.SET_CREDENTIALS: "Set credentials…",
    DeliveryAction.RETRY_NOW: "Retry now",
    DeliveryAction.WITHDRAW: "Withdraw…",
}


def _wrapped(text: str, width: int = 64) -> list[str]:
    """``text`` in lines of about ``width`` characters (a menu entry does not wrap)."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


class TrayMenu(QObject):
    """What the menu asks the application to do, and the standing entries that ask it.

    The entries are defined here once and shown in the tray menu and, without a system
    tray, in the fallback window (:meth:`standing`)."""

    review = Signal(str)  # an app id, or "" for all
    pause = Signal(bool)
    history = Signal()
    settings = Signal()
    about = Signal()  # Help and About: the welcome window
    quit = Signal()
    # A stuck delivery (its batch id, or its app id): what its menu entry offers.
    retry = Signal(str)  # Retry now (batch id)
    withdraw = Signal(str)  # Withdraw… (batch id): History asks, then takes the approval back
    credentials = Signal(str)  # Set credentials… (app id): Settings, at that app's credentials
    delivery = Signal(str)  # Show in History… (batch id)

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
        self.about_action = QAction("Help and About…", self)
        self.about_action.triggered.connect(self.about)
        self.quit_action = QAction("Quit", self)
        self.quit_action.triggered.connect(self.quit)
        self.show_snapshot(Snapshot())

    def standing(self) -> list[QAction]:
        """The entries that are always there, in menu order."""
        return [self.pause_action, self.history_action, self.settings_action, self.about_action, self.quit_action]

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
        self._submenus: list[QMenu] = []  # the stuck deliveries' (rebuilt with the menu)
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
        if s.problem or s.overview.failed_recently or s.overview.waiting_for_credentials or s.stuck:
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
        self._add_stuck(s)
        menu.addSeparator()
        # The shared entries: clear() above takes them out of the menu but does not delete them.
        pause, history, settings, about, quit_ = self.actions.standing()
        menu.addActions([pause, history, settings, about])
        menu.addSeparator()
        menu.addAction(quit_)

    def _add_stuck(self, s: Snapshot) -> None:
        """One submenu per delivery that does not get through: why, in words, and what to do."""
        for old in self._submenus:
            old.deleteLater()
        self._submenus = []
        if not s.stuck:
            return
        self.menu.addSeparator()
        heading = self.menu.addAction(f"Not delivered ({len(s.stuck)}):")
        heading.setEnabled(False)
        lines = [stuck.line for stuck in s.stuck]
        for stuck in s.stuck:
            batch_id, app_id = stuck.delivery.batch_id, stuck.delivery.app_id
            line = stuck.line
            if lines.count(line) > 1:  # one app's batches: told apart by their window
                window = window_words(stuck.delivery.window_start, stuck.delivery.window_end)
                line = f"{stuck.delivery.app_name} ({window}): {stuck.words.short}"
            sub = QMenu(f"    {line}", self.menu)
            sub.setAccessibleName(f"Not delivered: {line}")
            sub.setToolTipsVisible(True)
            sub.menuAction().setToolTip(stuck.words.sentence)
            self._submenus.append(sub)
            self.menu.addMenu(sub)
            for line in _wrapped(stuck.words.sentence):
                said = sub.addAction(line)
                said.setEnabled(False)
            sub.addSeparator()
            for action in stuck.words.actions:
                entry = sub.addAction(_ACTION_TEXT[action])
                signal = {
                    DeliveryAction.RETRY_NOW: (self.actions.retry, batch_id),
                    DeliveryAction.WITHDRAW: (self.actions.withdraw, batch_id),
                    DeliveryAction.SET_CREDENTIALS: (self.actions.credentials, app_id),
                }[action]
                entry.triggered.connect(lambda _=False, sig=signal[0], arg=signal[1]: sig.emit(arg))
            show = sub.addAction("Show in History…")
            show.triggered.connect(lambda _=False, b=batch_id: self.actions.delivery.emit(b))

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.actions.review.emit("")
