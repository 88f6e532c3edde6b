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
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSocketNotifier, QThreadPool, QTimer, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from .. import __version__
from ..core import (
    APP_ID,
    Autostart,
    Endpoint,
    Locations,
    SecretStore,
    TrayError,
    autostart_for_platform,
    demo_app_ids,
    port_from_env,
)
from .icons import app_icon
from .look import install_focus_ring
from .notices import Notices
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
    from .welcome import WelcomeWindow

log = logging.getLogger(__name__)

NO_TRAY_HELP = (
    "No system tray was found, so Telemetry Tray shows this window instead, with the tray menu's "
    "entries at the top. On GNOME, install the “AppIndicator and KStatusNotifierItem Support” "
    "extension to get a tray icon. Closing this window does not stop Telemetry Tray (start it "
    "again to bring the window back); to stop it, use Quit above"
    + ("." if sys.platform == "win32" else " or run: telemetry-tray quit")
)


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
    notified = Signal(str, str)  # a notification was shown: its kind and text

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
        # Notifications, each kind at its own pace (a batch notice never silences a new app's question).
        self.notices = Notices(self)
        self.notices.notice.connect(self._notify)
        self._apps_seen: tuple[object, ...] = ()  # the apps at the last snapshot (Settings reads again on a change)
        self._asking: set[str] | None = None  # apps awaiting consent at the last snapshot (None: none taken yet)
        self._signal_sockets: tuple[object, ...] = ()
        self.demo_vendor: DemoVendor | None = None
        self.demo_stream: SampleStream | None = None
        self.demo_loaded = False  # the demo apps are registered (their vendor may not be running)
        self.demo_problem = ""  # why the demo vendor is not running, when it is not
        self._demo_busy = False  # loading, resuming or removing the demo
        self._load_when_idle = False  # Load the demo was asked while busy resuming
        self._quitting = False
        self.welcome: WelcomeWindow | None = None

        self.menu_actions = TrayMenu()
        self.menu_actions.review.connect(self.open_review)
        self.menu_actions.pause.connect(self.set_paused)
        self.menu_actions.history.connect(self.open_history)
        self.menu_actions.settings.connect(self.open_settings)
        self.menu_actions.about.connect(self.open_about)
        self.menu_actions.quit.connect(self.quit)
        # A stuck delivery's entries in the menu.
        self.menu_actions.retry.connect(self.retry_delivery)
        self.menu_actions.withdraw.connect(lambda batch_id: self.open_history(batch_id, withdraw=True))
        self.menu_actions.credentials.connect(lambda app_id: self.open_settings(app_id, credentials=True))
        self.menu_actions.delivery.connect(lambda batch_id: self.open_history(batch_id))
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
        install_focus_ring()  # a focus outline that shows, in every window
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
        self._resume_demo()
        self._welcome_once()

    def _welcome_once(self) -> None:
        """On the very first run, say what Telemetry Tray is and where its icon lives: the
        welcome window and a message from the icon. (Without a tray the review window,
        open already, greets with its first-run page.)"""
        broker = self.broker
        assert broker is not None

        def first() -> bool:
            if broker.preference("welcomed") == "on":
                return False
            broker.set_preference("welcomed", "on")
            return not broker.apps()

        def welcome(is_first: bool) -> None:
            if is_first and self.tray is not None and not self._quitting:
                self.open_about()
                self.tray.showMessage(
                    "Telemetry Tray is running",
                    "Its icon is here. Click it to review what your apps want to send; right-click it for the menu.",
                    QSystemTrayIcon.MessageIcon.Information,
                    15_000,
                )

        run_task(first, welcome, lambda exc: log.warning("first run: %s", exc))

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
        self._quitting = True
        if self.tray is not None:
            self.tray.hide()
        for window in (self.review, self.history, self.settings, self.welcome):
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
        self.notices.consider(snapshot)
        if self.review is not None and self.review.isVisible():
            self.review.refresh()
        if self.history is not None and self.history.isVisible():
            self.history.refresh()
        # Settings shows the apps: read again when one registers, goes or changes its answer
        # (not at every report: its read asks the keyring about each app).
        apps = (tuple(sorted(snapshot.overview.names.items())), snapshot.overview.asking)
        if self.settings is not None and self.settings.isVisible() and apps != self._apps_seen:
            self.settings.refresh()
        self._apps_seen = apps

    def _prompt_new_apps(self, snapshot: Snapshot) -> None:
        """An app that registers while the tray runs opens its consent question in the
        review window, unless *Ask about new apps when they register* is off; if the person
        is deciding a batch there, the review says who asks instead of taking the batch away.
        (Apps that were already asking when the tray started wait in the menu and the review.)"""
        asking = {a.app_id for a in snapshot.awaiting_consent}
        new = sorted(asking - self._asking) if self._asking is not None else []
        self._asking = asking
        broker = self.broker
        if not new or broker is None:
            return

        def wanted() -> list[str]:
            """The new apps to ask about now: none with the prompts off; never the demo's,
            whose loading selects what the demo is about."""
            if broker.preference("new_app_prompts") != "on":
                return []
            demo = set(demo_app_ids())
            return [app_id for app_id in new if app_id not in demo]

        def prompt(asking: list[str]) -> None:
            if not asking:
                return
            review = self.review
            if review is not None and review.isVisible() and review.deciding_batch():
                # A batch is in front of the person: say who asks, without pulling them away.
                names = ", ".join(snapshot.overview.names.get(app_id, app_id) for app_id in asking)
                review.show_notice(f"{names} just registered and asks for your consent: it is at the top of the list.")
                return
            self.open_review(asking[0])

        run_task(wanted, prompt)

    def _notify(self, kind: str, text: str) -> None:
        """Show a notice (:class:`~.notices.Notices` decides when, per kind) if there is a
        tray to show it and notifications are on."""
        broker = self.broker
        if self.tray is None or broker is None:
            return

        def allowed() -> bool:
            return broker.preference("notifications") == "on"

        def show(on: bool) -> None:
            if on and self.tray is not None:
                self.tray.showMessage("Telemetry Tray", text, QSystemTrayIcon.MessageIcon.Information)
                self.notified.emit(kind, text)

        run_task(allowed, show, lambda exc: log.warning("notifications: %s", exc))

    def load_demo(self) -> None:
        """The first-run demo: example apps, a demo vendor on 127.0.0.1, sample reports;
        the review opens on PhotoEdit's batch, with the vendor's page a click away."""
        from ..core import DemoVendor, SampleStream, load_demo

        broker = self.broker
        if self._demo_busy and not self.demo_loaded:
            self._load_when_idle = True  # asked while the start looks for a demo to resume
            return
        if broker is None or self._demo_busy or self.demo_vendor is not None:
            self._show_demo()  # the buttons that asked come back
            return
        self._demo_busy = True

        def load() -> tuple[DemoVendor, list[str]]:
            vendor = DemoVendor().start()
            try:
                return vendor, load_demo(broker, vendor)
            except BaseException:
                vendor.stop()
                raise

        def loaded(result: tuple[DemoVendor, list[str]]) -> None:
            self._demo_busy = False
            vendor, app_ids = result
            if self._quitting:
                vendor.stop()
                return
            self.demo_vendor, self.demo_problem, self.demo_loaded = vendor, "", True
            self.demo_stream = SampleStream(broker, app_ids).start()
            self.refresh()
            self.open_review(app_ids[0])  # PhotoEdit, whose batch the notice speaks of
            self._show_demo()
            assert self.review is not None
            self.review.show_notice(
                "Demo loaded. PhotoEdit's batch is selected: look at exactly what it would send, untick or "
                "coarsen fields, then Approve and send. Then click Open the demo vendor's page (above) to see "
                "exactly what arrived. NoteSync asks for your consent; Inkwell Notes sends OpenTelemetry."
            )

        def failed(exc: BaseException) -> None:
            self._demo_busy = False
            self._show_demo()
            self.open_review()
            assert self.review is not None
            text = told(exc) if isinstance(exc, TrayError) else getattr(exc, "message", str(exc))
            self.review.show_notice(text, error=True)

        run_task(load, loaded, failed)

    def _resume_demo(self) -> None:
        """After a restart with the demo loaded: its vendor again, on the port the demo apps
        send to, and its sample reports. If that port is taken, the review says so and
        offers Remove the demo."""
        from ..core import ConflictError, SampleStream, resume_demo

        broker = self.broker
        assert broker is not None
        self._demo_busy = True

        def resumed(result: tuple[DemoVendor, list[str]] | None) -> None:
            self._demo_busy = False
            if result is None:
                self._show_demo()
                if self._load_when_idle and not self._quitting:
                    self._load_when_idle = False
                    self.load_demo()
                return
            vendor, app_ids = result
            if self._quitting:
                vendor.stop()
                return
            self.demo_vendor, self.demo_problem, self.demo_loaded = vendor, "", True
            self.demo_stream = SampleStream(broker, app_ids).start()
            self._show_demo()

        def failed(exc: BaseException) -> None:
            self._demo_busy = False
            log.warning("demo vendor: %s", exc)
            if self._quitting:
                return
            self.demo_loaded = isinstance(exc, ConflictError)  # its apps are there, its vendor is not
            self.demo_problem = told(exc) if isinstance(exc, TrayError) else str(exc)
            self.open_review()
            self._show_demo()
            assert self.review is not None
            self.review.show_notice(self.demo_problem, error=True)

        run_task(lambda: resume_demo(broker), resumed, failed)

    def remove_demo(self) -> None:
        """*Remove the demo* (the person confirmed it): the sample reports stop, the demo
        apps go with their batches, then the vendor stops."""
        from ..core import DemoRemoval, remove_demo

        broker = self.broker
        if broker is None or self._demo_busy:
            self._show_demo()
            return
        self._demo_busy = True
        stream, vendor = self.demo_stream, self.demo_vendor
        self.demo_stream = None

        def removed(removal: DemoRemoval) -> None:
            self._demo_busy = False
            self.demo_vendor, self.demo_loaded, self.demo_problem = None, False, ""
            self._show_demo()
            self.refresh()
            if self.review is not None:
                self.review.refresh()
                batches = f"{removal.batches} undelivered batch{'es' if removal.batches != 1 else ''}"
                self.review.show_notice(
                    f"Removed the demo: its {removal.apps} apps and {batches} ({removal.reports} reports) are gone "
                    "and its vendor stopped. The history keeps the receipts of what was decided."
                )

        def failed(exc: BaseException) -> None:
            self._demo_busy = False
            self._show_demo()
            if self.review is not None:
                self.review.show_notice(told(exc) if isinstance(exc, TrayError) else str(exc), error=True)
                self.review.refresh()

        run_task(lambda: remove_demo(broker, stream, vendor), removed, failed)

    def _show_demo(self) -> None:
        """What the windows offer of the demo: load it, or its vendor's page and Remove."""
        url = self.demo_vendor.url if self.demo_vendor is not None else None
        if self.review is not None:
            self.review.set_demo(url, loaded=self.demo_loaded)
            self.review.demo_button.setEnabled(not self._demo_busy)
        if self.welcome is not None:
            self.welcome.set_demo(loaded=self.demo_loaded)

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

            self.review = ReviewWindow(self.broker, self.secrets)
            self.review.changed.connect(self.refresh)
            self.review.demo_requested.connect(self.load_demo)
            self.review.remove_demo_requested.connect(self.remove_demo)
            self._show_demo()
        _raise(self.review)
        self.review.refresh()
        if app_id:
            self.review.show_app(app_id)

    def open_about(self) -> None:
        """The welcome window: what Telemetry Tray is for, where it lives, the demo."""
        if self.welcome is None:
            from .welcome import WelcomeWindow

            self.welcome = WelcomeWindow(has_tray=self.tray is not None)
            self.welcome.demo_requested.connect(self.load_demo)
            self.welcome.review_requested.connect(lambda: self.open_review())
        self.welcome.set_demo(loaded=self.demo_loaded)
        _raise(self.welcome)

    def open_history(self, batch_id: str = "", *, withdraw: bool = False) -> None:
        """History; with ``batch_id``, at that batch's delivery (and, with ``withdraw``,
        asking whether to withdraw it)."""
        broker = self.broker
        if broker is None:
            return
        if self.history is None:
            from .history_window import HistoryWindow

            self.history = HistoryWindow(broker)
            self.history.changed.connect(self.refresh)
            self.history.credentials_requested.connect(lambda app_id: self.open_settings(app_id, credentials=True))
        _raise(self.history)
        if batch_id:
            self.history.show_delivery(batch_id, withdraw=withdraw)
        self.history.refresh()

    def open_settings(self, app_id: str = "", *, credentials: bool = False) -> None:
        """Settings; with ``app_id`` and ``credentials``, asking for that app's vendor secret."""
        broker = self.broker
        if broker is None:
            return
        if self.settings is None:
            from .settings_window import SettingsWindow

            self.settings = SettingsWindow(broker, self.secrets, self.autostart, otlp_address=self.otlp_address)
            self.settings.changed.connect(self.refresh)
        _raise(self.settings)
        if app_id and credentials:
            self.settings.open_credentials(app_id)
        self.settings.refresh()

    def retry_delivery(self, batch_id: str) -> None:
        """*Retry now* on a stuck delivery: due now, and the sender wakes (off the UI thread)."""
        broker = self.broker
        if broker is None:
            return

        def failed(exc: BaseException) -> None:
            text = told(exc) if isinstance(exc, TrayError) else str(exc)
            log.warning("retry now: %s", text)
            if self.tray is not None:
                self.tray.showMessage("Telemetry Tray", text, QSystemTrayIcon.MessageIcon.Warning)
            self.refresh()

        run_task(lambda: broker.retry_now(batch_id), lambda _: self.refresh(), failed)

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
