"""The tray application: hosts the running instance and the windows, for one home.

Start-up shows the tray icon at once and starts the instance (database, endpoint,
schedules, delivery) on the thread pool. Changes from any thread (reports arriving,
the CLI, a delivery) reach the UI as one queued signal and a debounced refresh.
A second launch for the same home finds the first through a local socket and asks it
to show the review window.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSocketNotifier, QThreadPool, QTimer, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from .. import __version__
from ..core import APP_ID, Autostart, Endpoint, Locations, SecretStore, TrayError, autostart_for_platform, port_from_env
from .icons import app_icon
from .remedies import told
from .tray import Tray, TrayMenu
from .tray_snapshot import Snapshot, take_snapshot
from .worker import run_task

if TYPE_CHECKING:
    from ..core import Broker, DemoVendor, SampleStream
    from ..ingest.instance import Instance
    from .history_window import HistoryWindow
    from .review_window import ReviewWindow
    from .settings_window import SettingsWindow

log = logging.getLogger(__name__)

NO_TRAY_HELP = (
    "No system tray was found, so Telemetry Tray shows this window instead, with the tray menu's "
    "entries at the top. On GNOME, install the “AppIndicator and KStatusNotifierItem Support” "
    "extension to get a tray icon. Closing this window does not stop Telemetry Tray (start it "
    "again to bring the window back); to stop it, use Quit above"
    + ("." if sys.platform == "win32" else " or run: telemetry-tray quit")
)
NOTIFY_EVERY_S = 600.0


class _Bridge(QObject):
    """Carries "something changed" from any thread to the UI thread (queued)."""

    changed = Signal()


def socket_name(locations: Locations) -> str:
    digest = hashlib.sha256(str(locations.data).encode()).hexdigest()[:16]
    return f"telemetry-tray-{digest}"


def ask_running_ui(locations: Locations, message: bytes = b"review") -> bool:
    """Tell a UI already running for this home to show itself. True if there was one."""
    probe = QLocalSocket()
    probe.connectToServer(socket_name(locations))
    if not probe.waitForConnected(500):
        return False
    probe.write(message + b"\n")
    probe.waitForBytesWritten(500)
    probe.disconnectFromServer()
    return True


class TrayApp(QObject):
    def __init__(
        self,
        locations: Locations,
        *,
        port: int = 0,
        secrets: SecretStore | None = None,
        autostart: Autostart | None = None,
    ) -> None:
        super().__init__()
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.setQuitOnLastWindowClosed(False)  # closing windows never quits
        self.locations = locations
        self.port = port
        # Built on the thread pool once the icon shows: it brings the server, httpx and
        # TLS libraries, which need not hold up the icon.
        self.instance: Instance | None = None
        self._starting: Instance | None = None
        self.secrets = secrets or SecretStore()
        self.autostart = autostart or autostart_for_platform()
        self.snapshot = Snapshot()
        self.endpoint: Endpoint | None = None
        # Windows are built, and their modules imported, when first opened: start-up stays
        # quick and a tray at rest holds none of them.
        self.review: ReviewWindow | None = None
        self.history: HistoryWindow | None = None
        self.settings: SettingsWindow | None = None
        self._last_notice = 0.0
        self._notified: set[str] = set()
        self._asking: set[str] | None = None  # apps awaiting consent at the last snapshot (None: none taken yet)
        self._signal_sockets: tuple[object, ...] = ()
        self.demo_vendor: DemoVendor | None = None
        self.demo_stream: SampleStream | None = None

        self.menu_actions = TrayMenu()
        self.menu_actions.review.connect(self.open_review)
        self.menu_actions.pause.connect(self.set_paused)
        self.menu_actions.history.connect(self.open_history)
        self.menu_actions.settings.connect(self.open_settings)
        self.menu_actions.quit.connect(self.quit)
        self.tray: Tray | None = Tray(self.menu_actions) if QSystemTrayIcon.isSystemTrayAvailable() else None

        self.bridge = _Bridge()
        self._refresh_soon = QTimer(self)
        self._refresh_soon.setSingleShot(True)
        self._refresh_soon.setInterval(250)
        self._refresh_soon.timeout.connect(self.refresh)
        # Throttle, not debounce: a steady stream of changes must not postpone refreshing forever.
        self.bridge.changed.connect(self._schedule_refresh)

        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._on_local_message)

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        QLocalServer.removeServer(socket_name(self.locations))  # a stale socket from a crash
        self.server.listen(socket_name(self.locations))
        if self.tray is not None:
            self.tray.show()
            log.info("tray icon shown")
        else:
            self.open_review()
            assert self.review is not None
            # The tray menu's own entries (the same actions), so Settings, History, Pause
            # and Quit are there without a tray.
            self.review.add_commands(self.menu_actions.standing())
            self.review.show_notice(NO_TRAY_HELP)
        run_task(self._start_instance, self._started, self._start_failed)

    def _schedule_refresh(self) -> None:
        if not self._refresh_soon.isActive():
            self._refresh_soon.start()

    def _start_instance(self) -> Endpoint:
        from ..ingest.instance import Instance

        instance = Instance(self.locations, self.port, self.secrets)
        instance.listeners.append(self.bridge.changed.emit)
        self._starting = instance
        return instance.start()

    @property
    def broker(self) -> Broker | None:
        """The instance's broker once it has started."""
        return self.instance.broker if self.instance is not None else None

    def _started(self, endpoint: Endpoint) -> None:
        # Published only now: windows never see a half-started instance.
        self.instance = self._starting
        self.endpoint = endpoint
        broker = self.broker
        assert broker is not None
        broker.on_approved.append(self.bridge.changed.emit)
        if self.review is not None:
            self.review.attach(broker)
            otlp_problem = self.instance.otlp_problem if self.instance is not None else None
            if self.tray is None and otlp_problem:
                # No tray to say it in: the window standing in for it does.
                self.review.show_notice(f"{otlp_problem} {NO_TRAY_HELP}", error=True)
        self.refresh()

    def _start_failed(self, exc: BaseException) -> None:
        message = told(exc) if isinstance(exc, TrayError) else f"Telemetry Tray could not start: {exc}"
        self.snapshot = Snapshot(problem=message)
        self.menu_actions.show_snapshot(self.snapshot)
        if self.tray is not None:
            self.tray.show_snapshot(self.snapshot)
            self.tray.showMessage("Telemetry Tray", message, QSystemTrayIcon.MessageIcon.Critical)
        self.open_review()
        if self.review is not None:
            self.review.show_notice(message, error=True)

    def quit(self) -> None:
        if self.tray is not None:
            self.tray.hide()
        for window in (self.review, self.history, self.settings):
            if window is not None:
                window.close()
        self.server.close()
        if self.demo_stream is not None:
            self.demo_stream.stop()
        # A start (or a settings change) still in progress finishes first, so it cannot
        # outlive the quit or meet a closed database.
        QThreadPool.globalInstance().waitForDone(10_000)
        if self.settings is not None:
            self.settings.finish_changes(10_000)
        instance = self.instance or self._starting
        if instance is not None:
            instance.stop()
        if self.demo_vendor is not None:
            self.demo_vendor.stop()
        app = QApplication.instance()
        if app is not None:
            app.quit()

    # -- state -----------------------------------------------------------------------

    def refresh(self) -> None:
        broker = self.broker
        if broker is None:
            return
        otlp_problem = self.instance.otlp_problem if self.instance is not None else None
        run_task(
            lambda: take_snapshot(broker, otlp_problem=otlp_problem or ""),
            self._got_snapshot,
            lambda exc: log.warning("refresh: %s", exc),
        )

    def otlp_address(self) -> tuple[str, str]:
        """Where OpenTelemetry apps send (``OTEL_EXPORTER_OTLP_ENDPOINT``), and what keeps
        them from reaching it ("" when nothing): the receiver's own address, or the port it
        could not take."""
        instance = self.instance
        if instance is not None and instance.otlp_url:
            return instance.otlp_url, ""
        from ..ingest.instance import otlp_port_from_env

        port = instance.otlp_port if instance is not None and instance.otlp_port is not None else otlp_port_from_env()
        problem = instance.otlp_problem if instance is not None else None
        return f"http://127.0.0.1:{port}", problem or "Telemetry Tray has not started yet."

    def _got_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.menu_actions.show_snapshot(snapshot)
        self._prompt_new_apps(snapshot)
        if self.tray is not None:
            self.tray.show_snapshot(snapshot)
            self._notify(snapshot)
        if self.review is not None and self.review.isVisible():
            self.review.refresh()
        if self.history is not None and self.history.isVisible():
            self.history.refresh()

    def _prompt_new_apps(self, snapshot: Snapshot) -> None:
        """An app that registers while the tray runs opens its consent question in the
        review window (if it is not open already), unless *Ask about new apps when they
        register* is off. (Apps that were already asking when the tray started wait in the
        menu and the review.)"""
        asking = {a.app_id for a in snapshot.awaiting_consent}
        new = sorted(asking - self._asking) if self._asking is not None else []
        self._asking = asking
        broker = self.broker
        if not new or broker is None:
            return

        def wanted() -> bool:
            return broker.preference("new_app_prompts") == "on"

        def prompt(on: bool) -> None:
            # An open review window already lists the new app: the person is not pulled
            # away from the batch in front of them.
            if on and not (self.review is not None and self.review.isVisible()):
                self.open_review(new[0])

        run_task(wanted, prompt)

    def _notify(self, snapshot: Snapshot) -> None:
        """A quiet note about new batches, app requests or failed deliveries, at most
        every ten minutes, and only if notifications are on."""
        broker = self.broker
        fresh = {b.batch_id for b in snapshot.waiting} | {a.app_id for a in snapshot.awaiting_consent}
        fresh |= {f"failed:{n}" for n in range(snapshot.overview.failed_recently)}
        new = fresh - self._notified
        self._notified = fresh
        if not new or self.tray is None or broker is None:
            return
        if time.monotonic() - self._last_notice < NOTIFY_EVERY_S and self._last_notice:
            return

        def allowed() -> bool:
            return broker.preference("notifications") == "on"

        def show(on: bool) -> None:
            if on and self.tray is not None:
                self._last_notice = time.monotonic()
                self.tray.showMessage("Telemetry Tray", snapshot.summary(), QSystemTrayIcon.MessageIcon.Information)

        run_task(allowed, show)

    def load_demo(self) -> None:
        """The first-run demo: example apps, a demo vendor on 127.0.0.1, sample reports."""
        from ..core import DemoVendor, SampleStream, load_demo

        broker = self.broker
        if broker is None or self.demo_vendor is not None:
            return
        vendor = DemoVendor().start()
        self.demo_vendor = vendor

        def load() -> list[str]:
            return load_demo(broker, vendor)

        def loaded(app_ids: list[str]) -> None:
            self.demo_stream = SampleStream(broker, app_ids).start()
            self.refresh()
            if self.review is not None:
                self.review.refresh()
                self.review.show_notice(
                    "Demo loaded. Review PhotoEdit's batch and approve it, then open "
                    f"{vendor.url} in a browser: the demo vendor shows exactly what arrived."
                )

        def failed(exc: BaseException) -> None:
            vendor.stop()
            self.demo_vendor = None
            if self.review is not None:
                self.review.demo_button.setEnabled(True)
                text = told(exc) if isinstance(exc, TrayError) else getattr(exc, "message", str(exc))
                self.review.show_notice(text, error=True)

        run_task(load, loaded, failed)

    def set_paused(self, paused: bool) -> None:
        broker = self.broker
        if broker is not None:

            def failed(exc: BaseException) -> None:
                log.warning("pause: %s", exc)
                self.refresh()  # the Pause entry goes back to what is true

            run_task(lambda: broker.set_paused_all(paused), lambda _: self.refresh(), failed)

    # -- windows ---------------------------------------------------------------------

    def open_review(self, app_id: str = "") -> None:
        if self.review is None:
            from .review_window import ReviewWindow  # when first opened: a tray at rest does without it

            self.review = ReviewWindow(self.broker)
            self.review.changed.connect(self.refresh)
            self.review.demo_requested.connect(self.load_demo)
        _raise(self.review)
        self.review.refresh()
        if app_id:
            self.review.show_app(app_id)

    def open_history(self) -> None:
        broker = self.broker
        if broker is None:
            return
        if self.history is None:
            from .history_window import HistoryWindow

            self.history = HistoryWindow(broker)
        _raise(self.history)
        self.history.refresh()

    def open_settings(self) -> None:
        broker = self.broker
        if broker is None:
            return
        if self.settings is None:
            from .settings_window import SettingsWindow

            self.settings = SettingsWindow(broker, self.secrets, self.autostart, otlp_address=self.otlp_address)
            self.settings.changed.connect(self.refresh)
        _raise(self.settings)
        self.settings.refresh()

    def _on_local_message(self) -> None:
        while (connection := self.server.nextPendingConnection()) is not None:
            # Read when the bytes are there (never wait on the UI thread for a client).
            connection.readyRead.connect(lambda c=connection: self._read_local(c))
            connection.disconnected.connect(connection.deleteLater)

    def _read_local(self, connection: QLocalSocket) -> None:
        message = bytes(connection.readAll().data()).strip()
        connection.disconnectFromServer()
        if message == b"review":
            self.open_review()


def _raise(window: QObject) -> None:
    window.show()  # type: ignore[attr-defined]
    window.raise_()  # type: ignore[attr-defined]
    window.activateWindow()  # type: ignore[attr-defined]


def run_tray(locations: Locations) -> int:
    """``telemetry-tray`` with no verb: the tray, or raise the one already running."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication(sys.argv)
    assert isinstance(app, QApplication)
    app.setApplicationName("Telemetry Tray")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)  # names packaging/linux/<APP_ID>.desktop: Wayland matches windows to it
    app.setWindowIcon(app_icon())
    if ask_running_ui(locations):
        print("Telemetry Tray is already running; its review window was raised.", file=sys.stderr)
        return 0
    tray_app = TrayApp(locations, port=port_from_env())
    tray_app.start()
    _quit_on_signals(tray_app)
    return int(app.exec())


def _quit_on_signals(tray_app: TrayApp) -> None:
    """Ctrl-C and SIGTERM quit cleanly. Python runs signal handlers only when it gets
    control, which Qt's loop does not give it; the signal's wakeup byte, watched by a
    socket notifier, does (no polling timer)."""
    if not hasattr(signal, "set_wakeup_fd"):
        return
    receiver, sender = socket.socketpair()
    receiver.setblocking(False)
    sender.setblocking(False)
    signal.set_wakeup_fd(sender.fileno())
    notifier = QSocketNotifier(receiver.fileno(), QSocketNotifier.Type.Read, tray_app)

    def drain() -> None:
        with contextlib.suppress(OSError):
            receiver.recv(64)

    notifier.activated.connect(drain)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: tray_app.quit())
    tray_app._signal_sockets = (receiver, sender, notifier)  # kept alive with the app
