"""The first-run demo: the example apps, a demo vendor on 127.0.0.1, sample reports.

So that a newcomer sees the whole flow in a minute: an app asking for consent, a batch
waiting for review, approval with a narrower scope, and the demo vendor's page showing
exactly the bytes that arrived. Nothing leaves this machine.

The demo apps' manifests name the vendor's address, port and all, and an approved batch
keeps the endpoint it was approved for; so after a restart the vendor listens on that same
port again (:func:`resume_demo`) instead of the apps being pointed elsewhere: a new
endpoint is a new manifest version, which asks the person's consent again.
:func:`remove_demo` takes the demo apps, their batches and the vendor away.
"""

from __future__ import annotations

import errno
import functools
import html
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .broker import Broker
from .errors import ConflictError, NotFoundError
from .loop import BackgroundLoop
from .platform.paths import resources_dir
from .rules.consent import UNDECIDED
from .rules.manifest import Auth, AuthKind, Manifest, WireFormat, load_manifest
from .views import AppInfo

DEMO_FILES = ("photoedit.toml", "notes-sync.json", "otel-notes.toml")
DEMO_HOST = "127.0.0.1"
MAX_KEPT = 200

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    at: str
    idempotency_key: str
    body: bytes
    path: str = "/v1/batches"  # /v1/logs or /v1/metrics for the OpenTelemetry app


class DemoVendor:
    """A vendor that accepts batches and shows them at its own address (GET /), on
    ``port`` of 127.0.0.1 (0: any free one). A port it cannot take is a
    :class:`~tray_app.core.errors.ConflictError` saying why."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), 32 * 1024 * 1024)
                body = self.rfile.read(length)
                vendor._keep(Received(_now(), self.headers.get("Idempotency-Key", ""), body, self.path))
                self._answer(200, b'{"received": true}', "application/json")

            def do_GET(self) -> None:
                self._answer(200, vendor.page().encode("utf-8"), "text/html; charset=utf-8")

            def _answer(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        try:
            self._server = ThreadingHTTPServer((DEMO_HOST, port), Handler)
        except OSError as exc:
            reason = "in use by another program" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ConflictError(
                f"The demo vendor cannot listen on {DEMO_HOST}:{port} again: the port is {reason}. The demo "
                "apps send there, so their approved batches wait. Remove the demo and load it again.",
                title="Demo vendor not running",
            ) from exc
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://{DEMO_HOST}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-vendor", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"{self.url}/v1/batches"

    def start(self) -> DemoVendor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _keep(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)
            del self.received[:-MAX_KEPT]

    def page(self) -> str:
        with self._lock:
            items = list(reversed(self.received))
        rows = "".join(
            f"<h3>{html.escape(r.at)} · batch {html.escape(r.idempotency_key)} · {len(r.body):,} bytes"
            f" · POST {html.escape(r.path)}</h3>"
            f"<pre>{html.escape(_pretty(r.body))}</pre>"
            for r in items
        )
        return (
            "<!doctype html><meta charset='utf-8'><title>Demo vendor</title>"
            "<h1>Demo vendor: what arrived</h1><p>Exactly the bytes Telemetry Tray sent, newest first.</p>"
            + (rows or "<p>Nothing yet: approve a batch in Telemetry Tray.</p>")
        )


def demo_manifests(vendor: DemoVendor) -> list[Manifest]:
    """The example manifests, sending to the demo vendor instead, with no credentials (an
    OpenTelemetry app's to the vendor's base URL, as a collector's)."""
    folder = resources_dir() / "manifests"
    no_secret = Auth(AuthKind.NONE)
    manifests = [load_manifest(folder / name) for name in DEMO_FILES]
    return [
        replace(m, endpoint=vendor.url if m.format == WireFormat.OTLP else vendor.endpoint, auth=no_secret)
        for m in manifests
    ]


def load_demo(broker: Broker, vendor: DemoVendor) -> list[str]:
    """Register the demo apps (PhotoEdit and the OpenTelemetry app Inkwell Notes allowed,
    NoteSync still asking), and leave a batch of sample reports of each waiting for review.
    Returns the app ids."""
    photo, notes, inkwell = demo_manifests(vendor)
    for manifest in (photo, notes, inkwell):
        if manifest.app_id not in {a.app_id for a in broker.apps()}:
            broker.register(manifest)
    broker.set_consent(photo.app_id, True)
    broker.set_consent(inkwell.app_id, True)
    broker.ingest(photo.app_id, sample_reports(photo.app_id, 25))
    broker.ingest(notes.app_id, sample_reports(notes.app_id, 10))
    broker.ingest(inkwell.app_id, sample_reports(inkwell.app_id, 12))
    broker.close_batches(force=True)
    return [photo.app_id, notes.app_id, inkwell.app_id]


@functools.cache
def demo_app_ids() -> tuple[str, ...]:
    """The app ids of the demo's example manifests."""
    folder = resources_dir() / "manifests"
    return tuple(load_manifest(folder / name).app_id for name in DEMO_FILES)


def demo_apps(broker: Broker) -> list[AppInfo]:
    """The demo apps registered now: the example apps sending to a demo vendor on
    127.0.0.1 (an example manifest registered as it is, sending to its real vendor, is
    not the demo's)."""
    ids = demo_app_ids()
    return [a for a in broker.apps() if a.app_id in ids and urlsplit(a.endpoint).hostname == DEMO_HOST]


def resume_demo(broker: Broker) -> tuple[DemoVendor, list[str]] | None:
    """After a restart: the demo vendor listening again on the port the registered demo
    apps send to, and their app ids (for a :class:`SampleStream`); None without a demo.
    Raises :class:`~tray_app.core.errors.ConflictError` if that port is taken."""
    apps = demo_apps(broker)
    if not apps:
        return None
    port = urlsplit(apps[0].endpoint).port or 0
    return DemoVendor(port).start(), [a.app_id for a in apps]


@dataclass(frozen=True)
class DemoRemoval:
    """What *Remove the demo* took away."""

    apps: int
    batches: int  # undelivered batches discarded (each with its receipt)
    reports: int  # the reports in those that were still undecided


def remove_demo(
    broker: Broker,
    stream: SampleStream | None = None,
    vendor: DemoVendor | None = None,
    *,
    wait_s: float = 10.0,
) -> DemoRemoval:
    """Stop the sample reports, remove the demo apps (their undelivered batches are
    discarded with receipts, as any removed app's; the history keeps the receipts), then
    stop the vendor. A batch being sent right now is waited for (up to ``wait_s``)."""
    if stream is not None:
        stream.stop(timeout=wait_s)
    apps = demo_apps(broker)
    ids = {a.app_id for a in apps}
    reports = sum(b.reports for b in broker.pending() if b.app_id in ids and b.status in UNDECIDED)
    batches = 0
    deadline = time.monotonic() + wait_s
    for app in apps:
        while True:
            try:
                batches += broker.remove_app(app.app_id)
                break
            except NotFoundError:  # removed meanwhile (Settings, the CLI)
                break
            except ConflictError:  # one of its batches is being sent: it ends within seconds
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    if vendor is not None:
        vendor.stop()
    return DemoRemoval(len(apps), batches, reports)


class SampleStream:
    """A trickle of sample reports from the demo apps, as if they were being used: a
    :class:`~tray_app.core.loop.BackgroundLoop` sending a few every ``every_s`` seconds.
    A round that fails (the app was removed, say) is logged and the trickle goes on; it
    never disturbs the real work."""

    def __init__(self, broker: Broker, app_ids: list[str], every_s: float = 5.0) -> None:
        self.broker = broker
        self.app_ids = app_ids
        self.every_s = every_s
        self._rng = random.Random()
        self._loop = BackgroundLoop(
            "demo-reports", self._step, error_wait_s=every_s, logger=log, doing="demo sample reports"
        )

    def start(self) -> SampleStream:
        self._loop.start(after_s=self.every_s)
        return self

    def stop(self, timeout: float = 0) -> None:
        """Stop the trickle (by default without waiting for a round under way)."""
        self._loop.stop(timeout)

    def _step(self, woken: bool) -> float:
        app_id = self._rng.choice(self.app_ids)
        self.broker.ingest(app_id, sample_reports(app_id, self._rng.randint(1, 3), self._rng))
        return self.every_s


def sample_reports(app_id: str, count: int, rng: random.Random | None = None) -> list[dict[str, Any]]:
    rng = rng or random.Random(count)
    now = datetime.now(UTC)
    reports: list[dict[str, Any]] = []
    for _ in range(count):
        ts = (now - timedelta(minutes=rng.randrange(240))).strftime("%Y-%m-%dT%H:%M:%SZ")
        if "photoedit" in app_id:
            reports.append({
                "event": rng.choice(["open", "export", "crop", "filter", "crash"]),
                "ts": ts,
                "app_version": rng.choice(["3.1.4", "3.1.3"]),
                "duration_ms": rng.randrange(20, 4000),
                "os_version": rng.choice(["Debian 12", "Fedora 41", "Windows 11 23H2", "macOS 15.1"]),
                "gpu_accelerated": rng.random() < 0.6,
                "install_id": f"{rng.getrandbits(48):012x}",
                "account_email": "sam@example.net",
                "window_title": "holiday-photos.jpg",
            })  # fmt: skip
        elif "inkwell" in app_id:
            # What its OpenTelemetry log records become through the manifest's sources.
            event = rng.choice(["note.created", "note.exported", "search.run", "search.run", "sync.failed"])
            report: dict[str, Any] = {
                "event": event,
                "severity": "WARN" if event == "sync.failed" else "INFO",
                "at": ts,
                "app_version": "2.4.1",
                "os": rng.choice(["linux", "windows", "darwin"]),
            }
            if event == "note.exported":
                report["export_format"] = rng.choice(["markdown", "pdf", "html"])
            elif event == "search.run":
                report["search_ms"] = rng.randrange(3, 900)
            elif event == "sync.failed":
                report["error_type"] = rng.choice(["TimeoutError", "ConnectionResetError"])
            reports.append(report)
        else:
            reports.append({
                "sync_result": rng.choice(["ok", "ok", "ok", "conflict", "network_error"]),
                "sync_ms": round(rng.uniform(80, 4000), 1),
                "notes_count": rng.randrange(1, 900),
                "client_version": "2.0.1",
                "started_at": ts,
                "hostname": "sams-laptop",
            })  # fmt: skip
    return reports


def _pretty(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body.decode("utf-8", "replace")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
