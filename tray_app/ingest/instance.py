"""The running instance: the endpoint, the schedule and the spool, for one home.

``run --headless`` runs it on its own; the tray UI hosts the same object. Start-up
order matters: take the lock (one instance per home), open the database, take in the
spool, serve, and only then write ``endpoint.json`` so a client that finds the file
finds a live endpoint. Stopping undoes it in reverse.

Beside the native endpoint it serves the OTLP/HTTP receiver (``otlp_routes.py``) on a port
that stays the same across restarts (``TELEMETRY_TRAY_OTLP_PORT``, default 4318). If that
port is taken the instance runs all the same: it logs one line saying so, and writes the
problem to ``otlp.json`` (beside ``endpoint.json``), which ``telemetry-tray status`` reads.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from .. import __version__
from ..core import (
    Broker,
    DeliveryLoop,
    Endpoint,
    Forwarder,
    Housekeeper,
    InstanceLock,
    Locations,
    OtlpReceiver,
    SecretStore,
    Spool,
    number_from_env,
    remove_endpoint,
    remove_otlp_receiver,
    repair_permissions,
    timeout_from_env,
    write_endpoint,
    write_otlp_receiver,
)
from .otlp_routes import DEFAULT_OTLP_PORT, OTLP_PORT_ENV, OtlpApp
from .routes import IngestApp
from .server import IngestServer

log = logging.getLogger(__name__)


def otlp_port_from_env() -> int:
    """``TELEMETRY_TRAY_OTLP_PORT``: the OTLP/HTTP receiver's port, 4318 unless set (0: any free port)."""
    return number_from_env(
        OTLP_PORT_ENV,
        int,
        DEFAULT_OTLP_PORT,
        0,
        65535,
        what=f"a port number; use 1 to 65535 ({DEFAULT_OTLP_PORT}, the OTLP/HTTP port, unless set), "
        "or 0 for any free port.",
    )


class Instance:
    def __init__(
        self,
        locations: Locations,
        port: int = 0,
        secrets: SecretStore | None = None,
        *,
        otlp_port: int | None = None,
    ) -> None:
        self.locations = locations
        self.port = port
        self.otlp_port = otlp_port  # None: TELEMETRY_TRAY_OTLP_PORT, read at start
        # The tray passes its own: one keyring handle per process, so what Settings sees
        # (stored, or no keyring yet) is what the forwarder sees.
        self.secrets = secrets if secrets is not None else SecretStore()
        self.lock = InstanceLock(locations)
        self.broker: Broker | None = None
        self.server: IngestServer | None = None
        self.otlp_server: IngestServer | None = None
        self.otlp_problem: str | None = None  # why the OTLP receiver does not serve
        self.housekeeper: Housekeeper | None = None
        self.forwarder: Forwarder | None = None
        self.delivery: DeliveryLoop | None = None
        self.endpoint: Endpoint | None = None
        # Called (from any thread) when something a person would see may have changed:
        # reports arrived, a window closed, a delivery finished, the CLI changed something.
        self.listeners: list[Callable[[], None]] = []

    def changed(self) -> None:
        for listener in list(self.listeners):
            listener()

    def start(self) -> Endpoint:
        timeout = timeout_from_env()  # a bad setting is refused before anything is touched
        otlp_port = self.otlp_port if self.otlp_port is not None else otlp_port_from_env()
        self.locations.prepare()
        self.lock.acquire()
        try:
            for problem in repair_permissions(self.locations):
                log.warning("file permissions: %s", problem)
            self.broker = Broker.open(self.locations)
            self.housekeeper = Housekeeper(self.broker, Spool(self.locations.spool), on_change=self.changed)
            self.housekeeper.run_once()  # windows that ended while we were away, and the spool
            self.forwarder = Forwarder(self.broker.deliveries, self.secrets, timeout=timeout)
            self.delivery = DeliveryLoop(self.forwarder, on_change=self.changed)
            app = IngestApp(self.broker, __version__, self._ingested, self.wake)
            self.server = IngestServer(app, self.port)
            self.server.start()
            self._start_otlp(otlp_port)
            self.housekeeper.start()
            self.delivery.start()
            self.endpoint = Endpoint(self.server.url, os.getpid(), __version__)
            write_otlp_receiver(self.locations, OtlpReceiver(self.endpoint.pid, self.otlp_url, self.otlp_problem))
            write_endpoint(self.locations, self.endpoint)
        except BaseException:
            self.stop()
            raise
        log.info("serving on %s", self.endpoint.url)
        return self.endpoint

    @property
    def otlp_url(self) -> str | None:
        """Where OpenTelemetry apps send (``OTEL_EXPORTER_OTLP_ENDPOINT``), or None."""
        return self.otlp_server.url if self.otlp_server is not None else None

    def _start_otlp(self, port: int) -> None:
        assert self.broker is not None
        self.otlp_problem = None
        try:
            self.otlp_server = IngestServer(OtlpApp(self.broker, self._ingested), port, name="otlp-server")
        except OSError as exc:
            reason = "in use by another program" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            self.otlp_problem = (
                f"The OpenTelemetry (OTLP/HTTP) port {port} is {reason}, so OpenTelemetry apps cannot reach "
                f"Telemetry Tray; the rest works. Stop what uses it, or set {OTLP_PORT_ENV} to another port "
                "and restart."
            )
            log.warning("%s", self.otlp_problem)
            return
        self.otlp_server.start()
        log.info("OTLP/HTTP receiver on %s", self.otlp_server.url)

    def wake(self) -> None:
        """Look for due work now: windows to close, spool to drain, batches to send."""
        if self.housekeeper is not None:
            self.housekeeper.wake()
        if self.delivery is not None:
            self.delivery.wake()
        self.changed()

    def _ingested(self) -> None:
        if self.housekeeper is not None:
            self.housekeeper.wake()
        self.changed()

    def stop(self) -> None:
        if self.endpoint is not None:
            remove_endpoint(self.locations, self.endpoint.pid)
            remove_otlp_receiver(self.locations, self.endpoint.pid)
            self.endpoint = None
        if self.otlp_server is not None:
            self.otlp_server.stop()
            self.otlp_server = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.housekeeper is not None:
            self.housekeeper.stop()
            self.housekeeper = None
        if self.delivery is not None:
            self.delivery.stop()
            self.delivery = None
        if self.forwarder is not None:
            self.forwarder.close()
            self.forwarder = None
        if self.broker is not None:
            self.broker.close()
            self.broker = None
        self.lock.release()


def run_headless(locations: Locations, port: int, ready: threading.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    instance = Instance(locations, port)
    try:
        endpoint = instance.start()
        print(f"Telemetry Tray {__version__} listening on {endpoint.url} (pid {endpoint.pid})", flush=True)
        if instance.otlp_url is not None:
            print(f"OpenTelemetry (OTLP/HTTP) receiver on {instance.otlp_url}", flush=True)
        if ready is not None:
            ready.set()
        while not stop.wait(3600):
            pass
    finally:
        instance.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
