"""The client SDK: how an app registers with Telemetry Tray and hands it reports.

::

    from .client import TelemetryClient

    client = TelemetryClient.register("photoedit.toml")   # once; keep client.token
    client = TelemetryClient("org.example.photoedit", token)  # every later start
    client.report({"event": "crop", "duration_ms": 85})
    client.close()                                        # or let the interpreter exit

``report()`` never blocks and never raises: it appends the report to a bounded
in-memory queue (a ``deque``; when full, the oldest report is dropped and counted) and
returns. A background thread wakes every ``flush_interval`` seconds, or as soon as a
batch is full, encodes the reports and POSTs them in batches to the running instance's
``/v1/reports``. When no instance runs (no live ``endpoint.json``, connection refused,
timeout, 5xx), the batch goes to the spool instead (one file per flush, written
atomically, bounded; see :mod:`tray_app.core.storage.spool`) and the instance takes it in when
it starts. ``endpoint.json`` is read again on every flush, so the client follows an
instance that starts late or moves to another port.

Only registration raises (:class:`ClientError`, a :class:`~tray_app.core.errors.TrayError`,
or :class:`~tray_app.core.errors.ManifestError` for a manifest that does not validate).
Everything else is counted in :attr:`TelemetryClient.stats`.

The SDK uses the standard library only (``http.client``, ``json``, ``threading``) and
never imports Qt.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import http.client
import itertools
import json
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from . import __version__
from .core.errors import ClientError, NotRunning, RegistrationRefused
from .core.platform.endpoint_file import running_endpoint
from .core.platform.paths import HOME_ENV, Locations
from .core.rules.intake import MAX_BODY_BYTES, MAX_REPORTS
from .core.rules.manifest import Manifest, load_manifest, manifest_from_obj
from .core.storage.spool import Spool

log = logging.getLogger(__name__)

BATCH_SIZE: Final = 500  # reports per request
MAX_QUEUE: Final = 10_000  # reports held in memory; beyond it the oldest are dropped
FLUSH_INTERVAL: Final = 1.0  # seconds between background flushes
SPOOL_INTERVAL: Final = 10.0  # with no instance, seconds reports may wait in memory before spooling
TIMEOUT: Final = 5.0  # seconds for one HTTP exchange with the instance
CLOSE_TIMEOUT: Final = 10.0  # seconds close() and flush() wait by default
EXIT_TIMEOUT: Final = 5.0  # seconds the interpreter's exit waits for every client to flush
# One request's JSON must stay under the instance's limit (which applies after gunzip).
MAX_REQUEST_BYTES: Final = MAX_BODY_BYTES - 1024

_USER_AGENT: Final = f"telemetry-tray-client/{__version__}"
_OPEN, _TRANSIENT, _REFUSED = "open", "transient", "refused"

ManifestSource = Manifest | Mapping[str, Any] | str | os.PathLike[str]


# -- errors ---------------------------------------------------------------------------


# -- statistics -----------------------------------------------------------------------


@dataclass(frozen=True)
class ClientStats:
    """What became of the reports handed to :meth:`TelemetryClient.report`.

    ``queued`` counts every call; each report ends up in exactly one of ``sent``,
    ``rejected``, ``spooled``, ``failed`` or (lost to a bound) ``dropped``, or is still
    ``pending`` in memory. Reports the spool later drops for room are counted in
    ``dropped`` as well as in ``spooled``.
    """

    queued: int = 0
    sent: int = 0  # accepted by the instance (stored, waiting for the person)
    rejected: int = 0  # refused by the instance: the report does not match the manifest
    spooled: int = 0  # left in the spool for the instance to take in when it starts
    dropped: int = 0  # lost to a bound: the full queue, the full spool, or report() after close()
    failed: int = 0  # could not be sent: not a dict, not JSON, too large, bad token, app blocked
    pending: int = 0  # still in memory
    last_error: str | None = None


# -- the client -----------------------------------------------------------------------


class TelemetryClient:
    """A registered app's connection to Telemetry Tray.

    ``home`` or ``locations`` choose the Telemetry Tray home (default: the one of
    ``TELEMETRY_TRAY_HOME`` or the per-user folders); ``url`` fixes the instance's
    address instead of reading it from ``endpoint.json`` (the spool is still the home's).
    """

    def __init__(
        self,
        app_id: str,
        token: str,
        *,
        home: str | os.PathLike[str] | None = None,
        locations: Locations | None = None,
        url: str | None = None,
        batch_size: int = BATCH_SIZE,
        max_queue: int = MAX_QUEUE,
        flush_interval: float = FLUSH_INTERVAL,
        spool_interval: float = SPOOL_INTERVAL,
        timeout: float = TIMEOUT,
    ) -> None:
        _check_app_id(app_id)
        if not isinstance(token, str) or not token.strip():
            raise ClientError("The token is empty; use the token printed when the app was registered.")
        if not 1 <= batch_size <= MAX_REPORTS or max_queue < 1 or flush_interval <= 0 or timeout <= 0:
            raise ClientError(
                f"batch_size must be 1 to {MAX_REPORTS}, max_queue at least 1, flush_interval and timeout above 0."
            )
        self.app_id = app_id
        self.token = token.strip()
        self.status: str | None = None  # the app's status when it registered, if it did here
        self.locations = _locations(home, locations)
        queue: deque[object] = deque(maxlen=max_queue)
        self._queue = queue
        self._append = queue.append
        self._count = itertools.count()  # one tick per report() call; atomic, unlike += 1
        self._next = self._count.__next__
        self._batch_size = batch_size
        self._closed = False
        self._sender = _Sender(
            app_id=app_id,
            token=self.token,
            locations=self.locations,
            url=_check_url(url) if url is not None else None,
            queue=queue,
            batch_size=batch_size,
            flush_interval=flush_interval,
            spool_interval=spool_interval,
            timeout=timeout,
        )
        self._sender.start()
        # A client dropped without close() still sends what it holds (without blocking
        # whoever dropped it); at interpreter exit every running sender is flushed.
        self._finalizer = weakref.finalize(self, self._sender.stop)
        self._finalizer.atexit = False

    @classmethod
    def register(
        cls,
        manifest: ManifestSource,
        *,
        token: str | None = None,
        home: str | os.PathLike[str] | None = None,
        locations: Locations | None = None,
        url: str | None = None,
        timeout: float = TIMEOUT,
        batch_size: int = BATCH_SIZE,
        max_queue: int = MAX_QUEUE,
        flush_interval: float = FLUSH_INTERVAL,
        spool_interval: float = SPOOL_INTERVAL,
    ) -> TelemetryClient:
        """Register the app (a :class:`Manifest`, its dict, or a .toml/.json file) with
        the running instance and return a client holding its token.

        Keep ``client.token``: it is shown only once. To register a new manifest version
        of an app that is already registered, pass its ``token``. Raises
        :class:`ManifestError` if the manifest does not validate, :class:`NotRunning`
        if no instance runs, :class:`RegistrationRefused` if the instance says no.
        """
        body = json.dumps(_manifest(manifest).to_obj(), ensure_ascii=False).encode("utf-8")
        where = _locations(home, locations)
        base = _check_url(url) if url is not None else _endpoint_url(where)
        if base is None:
            raise NotRunning(
                f"No Telemetry Tray runs for {_describe(where)}. Start it (telemetry-tray, or "
                f"telemetry-tray run --headless) and register again."
            )
        headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            status, answer = _request(base, "/v1/apps", body, headers, timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise NotRunning(f"Telemetry Tray at {base} did not answer ({_why(exc)}). Is it running?") from None
        obj = _json_object(answer)
        if status != 201:
            code = str(obj.get("error") or "error")
            message = str(obj.get("message") or answer[:200].decode("utf-8", "replace") or "no explanation given")
            raise RegistrationRefused(status, code, message)
        try:
            app_id, issued = str(obj["app_id"]), str(obj["token"])
        except KeyError:
            raise ClientError(f"Telemetry Tray at {base} answered the registration without a token.") from None
        client = cls(
            app_id,
            issued,
            locations=where,
            url=url,
            batch_size=batch_size,
            max_queue=max_queue,
            flush_interval=flush_interval,
            spool_interval=spool_interval,
            timeout=timeout,
        )
        client.status = str(obj.get("status") or "") or None
        return client

    def report(self, report: object) -> None:
        """Hand in one report (a flat dict of the manifest's fields).

        Never blocks and never raises; the dict is encoded later on the background
        thread, so do not change it after handing it in.
        """
        try:
            self._append(report)
            self._next()
            if len(self._queue) >= self._batch_size and not self._sender.signalled:
                self._sender.signal()
        except Exception:  # noqa: S110 - report() must never raise into the app
            pass

    def flush(self, timeout: float | None = CLOSE_TIMEOUT) -> bool:
        """Wait until every report handed in so far is sent, spooled or counted as
        failed; ``False`` if ``timeout`` seconds passed first. Never raises."""
        try:
            return self._sender.flush(timeout)
        except Exception:
            return False

    def close(self, timeout: float | None = CLOSE_TIMEOUT) -> bool:
        """Flush, then stop the background thread. Reports handed in after this are
        dropped (and counted). Idempotent; ``False`` if ``timeout`` passed first."""
        try:
            if not self._closed:
                self._closed = True
                # From now on report() appends to a queue that keeps nothing.
                nowhere: deque[object] = deque(maxlen=0)
                self._append = nowhere.append
            return self._sender.stop(wait=True, timeout=timeout)
        except Exception:
            return False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> ClientStats:
        """A snapshot of what became of the reports so far."""
        return self._sender.stats(_counter_value(self._count))

    def __enter__(self) -> TelemetryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TelemetryClient {self.app_id} {'closed' if self._closed else 'open'}>"


# -- the background sender ------------------------------------------------------------


@dataclass
class _Chunk:
    """Reports that encode, with their JSON array (the body of one request)."""

    reports: list[object]
    array: bytes
    # Sent as Idempotency-Key and kept in the spool with the reports: a request the
    # instance stored but whose answer was lost is stored once however often it is resent.
    key: str = field(default_factory=lambda: uuid.uuid4().hex)


class _Sender:
    """The background thread and everything it owns. It holds no reference to the
    client, so a client that is dropped can be collected."""

    def __init__(
        self,
        *,
        app_id: str,
        token: str,
        locations: Locations,
        url: str | None,
        queue: deque[object],
        batch_size: int,
        flush_interval: float,
        spool_interval: float,
        timeout: float,
    ) -> None:
        self.app_id = app_id
        self.token = token
        self.token_sha256 = hashlib.sha256(token.encode("utf-8")).hexdigest()
        self.locations = locations
        self.url = url
        self.queue = queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.spool_interval = spool_interval
        self.timeout = timeout
        self.spool = Spool(locations.spool)
        self.signalled = False  # set by report() before it wakes the thread, cleared by the thread
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[threading.Event] = []
        self._stopping = False
        self._finished = False  # the thread has ended (or is ending): nobody will answer waiters
        self._thread: threading.Thread | None = None
        # Counted by the thread only; read by stats().
        self._taken = 0
        self._sent = 0
        self._rejected = 0
        self._spooled = 0
        self._dropped = 0
        self._failed = 0
        self._overflow = 0
        self._last_error: str | None = None
        self._refused: str | None = None  # why the instance will never take our reports (bad token)
        self._held_since: float | None = None  # when reports started waiting for an instance
        self._offline = False
        self._conn: http.client.HTTPConnection | None = None
        self._conn_url = ""

    # -- control (any thread) --------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"telemetry-tray-client {self.app_id}", daemon=True)
        with _SENDERS_LOCK:
            _SENDERS.add(self)
        self._thread.start()

    def restart_in_child(self) -> None:
        """After fork(): the child has no thread and may hold copies of locks taken in
        the parent. Start afresh; what the parent had queued is the parent's to send."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._waiters = []
        self._conn = None  # the parent's socket: never write to it from here
        self.signalled = False
        held = len(self.queue)
        self.queue.clear()
        self._taken += held
        if self._stopping or self._finished:
            _SENDERS.discard(self)
            return
        self.start()

    def signal(self) -> None:
        self.signalled = True
        self._wake.set()

    def flush(self, timeout: float | None) -> bool:
        done = threading.Event()
        with self._lock:
            if self._finished or self._thread is None:
                return not self.queue
            self._waiters.append(done)
        self._wake.set()
        return done.wait(timeout)

    def stop(self, wait: bool = False, timeout: float | None = None) -> bool:
        """Ask the thread to send what is queued and end; with ``wait``, wait for it."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        thread = self._thread
        if not wait or thread is None:
            return True
        if thread is not threading.current_thread():
            thread.join(timeout)
        return not thread.is_alive() and not self.queue

    def stats(self, queued: int) -> ClientStats:
        with self._lock:
            pending = len(self.queue)
            # report() appends before it counts, so this can only run behind; it is exact
            # whenever no report() is half done, and never goes down.
            self._overflow = max(self._overflow, queued - self._taken - pending)
            return ClientStats(
                queued=queued,
                sent=self._sent,
                rejected=self._rejected,
                spooled=self._spooled,
                dropped=self._dropped + self._overflow,
                failed=self._failed,
                pending=pending,
                last_error=self._last_error,
            )

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                self.signalled = False
                with self._lock:
                    waiters, self._waiters = self._waiters, []
                    stopping = self._stopping
                try:
                    self._flush(force=bool(waiters) or stopping)
                except Exception as exc:  # a bug must not stop the thread, or flush() would hang
                    log.exception("telemetry client: flushing failed")
                    self._note(f"flushing failed: {exc!r}")
                for done in waiters:
                    done.set()
                if stopping:
                    break
        finally:
            self._disconnect()
            with _SENDERS_LOCK:
                _SENDERS.discard(self)
            with self._lock:
                self._finished = True
                waiters, self._waiters = self._waiters, []
            for done in waiters:
                done.set()

    def _flush(self, *, force: bool) -> None:
        count = len(self.queue)  # what is here now; what comes later waits for the next round
        if not count:
            self._held_since = None
            return
        if self._refused is not None:
            self._fail(self._take(count), self._refused)
            return
        base = self.url if self.url is not None else _endpoint_url(self.locations)
        if base is None:
            self._went_offline("no instance is running")
            now = time.monotonic()
            if self._held_since is None:
                self._held_since = now
            # Keep small amounts in memory a while: one spool file per second would
            # fill the spool's file bound in minutes.
            if not force and count < self.batch_size and now - self._held_since < self.spool_interval:
                return
            self._held_since = None
            self._spool(self._encode(self._take(count)))
            return
        self._held_since = None
        chunks = self._encode(self._take(count))
        try:
            for index, chunk in enumerate(chunks):
                outcome = self._post(base, chunk)
                if outcome == _TRANSIENT:
                    self._spool(chunks[index:])
                    return
                if outcome == _REFUSED:
                    for rest in chunks[index + 1 :]:
                        self._fail(rest.reports, self._refused or "refused")
                    return
        finally:
            # One connection per flush, kept alive only across its batches: an idle
            # connection would hold a socket of the instance between flushes.
            self._disconnect()

    def _take(self, count: int) -> list[object]:
        popleft = self.queue.popleft
        items: list[object] = []
        # Under the lock, so stats() never sees reports gone from the queue but not yet
        # counted as taken (it would count them as dropped). report() takes no lock.
        with self._lock:
            with contextlib.suppress(IndexError):  # the queue may have dropped some meanwhile
                for _ in range(count):
                    items.append(popleft())
            self._taken += len(items)
        return items

    # -- encoding --------------------------------------------------------------------

    def _encode(self, items: list[object]) -> list[_Chunk]:
        """Reports as request-sized chunks of JSON; what cannot be sent is counted failed."""
        good: list[object] = []
        for item in items:
            if isinstance(item, dict):
                good.append(item)
            else:
                self._fail([item], f"a report must be a dict, not {type(item).__name__}")
        chunks: list[_Chunk] = []
        for start in range(0, len(good), self.batch_size):
            group = good[start : start + self.batch_size]
            try:
                array = _dumps(group)
            except Exception:  # one bad report (or more); find them below
                array = None
            if array is not None and len(array) <= MAX_REQUEST_BYTES:
                chunks.append(_Chunk(group, array))
            else:
                chunks.extend(self._encode_each(group))
        return chunks

    def _encode_each(self, group: list[object]) -> list[_Chunk]:
        chunks: list[_Chunk] = []
        reports: list[object] = []
        parts: list[bytes] = []
        size = 2
        for item in group:
            try:
                part = _dumps(item)
            except Exception as exc:
                self._fail([item], f"a report is not JSON ({_why(exc)})")
                continue
            if len(part) + 2 > MAX_REQUEST_BYTES:
                self._fail([item], f"a report of {len(part)} bytes is over the {MAX_REQUEST_BYTES}-byte limit")
                continue
            if size + len(part) + 1 > MAX_REQUEST_BYTES:
                chunks.append(_Chunk(reports, b"[" + b",".join(parts) + b"]"))
                reports, parts, size = [], [], 2
            reports.append(item)
            parts.append(part)
            size += len(part) + 1
        if reports:
            chunks.append(_Chunk(reports, b"[" + b",".join(parts) + b"]"))
        return chunks

    # -- HTTP ------------------------------------------------------------------------

    def _post(self, base: str, chunk: _Chunk) -> str:
        body = b'{"reports":' + chunk.array + b"}"
        # Not gzipped: on loopback it costs more than it saves (about 84,000 against
        # 90,000 reports/s delivered), and the instance's size limit counts unzipped bytes.
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.token}",
            "User-Agent": _USER_AGENT,
            "Idempotency-Key": chunk.key,
        }
        count = len(chunk.reports)
        for attempt in (1, 2):
            conn, reused = self._connection(base)
            try:
                conn.request("POST", "/v1/reports", body, headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._disconnect()
                # The instance may have closed a kept-alive connection between two
                # batches; try once on a fresh connection.
                stale = isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError)
                if reused and stale and attempt == 1:
                    continue
                self._went_offline(f"{base} did not answer ({_why(exc)})")
                return _TRANSIENT
            break
        if response.will_close:
            self._disconnect()
        status = response.status
        obj = _json_object(answer)
        if status == 202:
            self._went_online(base)
            accepted = obj.get("accepted")
            rejected = obj.get("rejected")
            refused = len(rejected) if isinstance(rejected, list) else 0
            with self._lock:
                self._sent += accepted if isinstance(accepted, int) else count - refused
                self._rejected += refused
            if refused and isinstance(rejected, list):
                first = rejected[0]
                detail = first.get("error") if isinstance(first, dict) else first
                self._note(f"{refused} report(s) rejected by Telemetry Tray, e.g.: {detail}")
            return _OPEN
        message = str(obj.get("message") or f"HTTP {status}")
        if status == 422:  # every report in the batch is refused; resending cannot help
            with self._lock:
                self._rejected += count
            self._note(f"{count} report(s) rejected by Telemetry Tray: {_first_rejection(obj) or message}")
            return _OPEN
        if status in (408, 429) or status >= 500:
            self._went_offline(f"{base} answered {status}: {message}")
            return _TRANSIENT
        if status == 401:
            # The token will not become valid: stop sending rather than spool forever.
            self._refused = f"the token is not valid for {self.app_id}: {message}"
            log.error("telemetry client %s: %s; reports will be dropped", self.app_id, self._refused)
            self._fail(chunk.reports, self._refused)
            return _REFUSED
        # 403 (the person blocked the app), 400, 413, 415: this batch cannot be sent.
        self._fail(chunk.reports, f"Telemetry Tray answered {status}: {message}")
        return _OPEN

    def _connection(self, base: str) -> tuple[http.client.HTTPConnection, bool]:
        if self._conn is not None and self._conn_url != base:
            self._disconnect()
        if self._conn is not None:
            return self._conn, True
        parts = urlsplit(base)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=self.timeout)
        self._conn_url = base
        return self._conn, False

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    # -- outcomes --------------------------------------------------------------------

    def _spool(self, chunks: list[_Chunk]) -> None:
        reports = [report for chunk in chunks for report in chunk.reports]
        if not reports:
            return
        try:
            before = self.spool.dropped(self.app_id)
            for chunk in chunks:  # one file per request, under the key it was (or would be) sent with
                self.spool.write(self.app_id, self.token_sha256, chunk.reports, key=chunk.key)
            lost = max(0, self.spool.dropped(self.app_id) - before)
        except Exception as exc:
            self._fail(reports, f"cannot write the spool in {self.spool.root}: {_why(exc)}")
            return
        with self._lock:
            self._spooled += len(reports)
            self._dropped += lost
        if lost:
            self._note(f"the spool is full; its {lost} oldest report(s) were dropped")

    def _fail(self, reports: list[object], why: str) -> None:
        if not reports:
            return
        with self._lock:
            self._failed += len(reports)
            self._last_error = why

    def _note(self, why: str) -> None:
        with self._lock:
            self._last_error = why

    def _went_offline(self, why: str) -> None:
        if not self._offline:
            self._offline = True
            log.info("telemetry client %s: %s; reports go to the spool", self.app_id, why)

    def _went_online(self, base: str) -> None:
        if self._offline:
            self._offline = False
            log.info("telemetry client %s: sending to %s again", self.app_id, base)


# -- at exit --------------------------------------------------------------------------

# Every sender whose thread runs. Senders hold no reference to their clients, so this
# keeps no client alive; it lets the interpreter's exit flush them all.
_SENDERS: set[_Sender] = set()
_SENDERS_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    global _SENDERS_LOCK
    _SENDERS_LOCK = threading.Lock()
    for sender in list(_SENDERS):
        sender.restart_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _flush_all_at_exit() -> None:
    with _SENDERS_LOCK:
        senders = list(_SENDERS)
    for sender in senders:
        sender.stop()
    deadline = time.monotonic() + EXIT_TIMEOUT
    for sender in senders:
        sender.stop(wait=True, timeout=max(0.0, deadline - time.monotonic()))


# -- helpers --------------------------------------------------------------------------


def _manifest(source: ManifestSource) -> Manifest:
    if isinstance(source, Manifest):
        return source
    if isinstance(source, Mapping):
        return manifest_from_obj(source)
    return load_manifest(Path(source))


def _locations(home: str | os.PathLike[str] | None, locations: Locations | None) -> Locations:
    if home is not None and locations is not None:
        raise ClientError("Give home or locations, not both.")
    if locations is not None:
        return locations
    if home is not None:
        return Locations.under(Path(home))
    return Locations.from_env()


def _endpoint_url(locations: Locations) -> str | None:
    endpoint = running_endpoint(locations)
    if endpoint is None:
        return None
    try:
        return _check_url(endpoint.url)
    except ClientError:
        return None


def _check_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except (ValueError, TypeError, AttributeError):
        port, parts = None, None
    if parts is None or parts.scheme != "http" or not parts.hostname or port is None:
        raise ClientError(f"{url!r} is not the address of a Telemetry Tray; it looks like http://127.0.0.1:PORT.")
    return f"http://{parts.netloc}"


def _check_app_id(app_id: object) -> None:
    if not isinstance(app_id, str) or not app_id or app_id.startswith(".") or "/" in app_id or "\\" in app_id:
        raise ClientError(f"{app_id!r} is not an app id; use the reverse-DNS app_id of the manifest.")


def _describe(locations: Locations) -> str:
    if locations.home is not None:
        return f"the home {locations.home} ({HOME_ENV})"
    return f"this user (no {locations.endpoint_file})"


def _request(base: str, path: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _dumps(obj: object) -> bytes:
    # allow_nan=False: NaN is not JSON, and one in a batch would make the instance
    # refuse the whole body. ensure_ascii=False + UTF-8 fails on lone surrogates here,
    # for that one report, rather than in the spool or at the instance.
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _first_rejection(obj: Mapping[str, Any]) -> str | None:
    rejected = obj.get("rejected")
    if isinstance(rejected, list) and rejected and isinstance(rejected[0], dict):
        error = rejected[0].get("error")
        return str(error) if error is not None else None
    return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _counter_value(counter: itertools.count[int]) -> int:
    # itertools.count is the cheapest counter that is atomic across threads; its repr
    # is the only way to read it without moving it ("count(42)").
    text = repr(counter)
    return int(text[text.index("(") + 1 : -1])
