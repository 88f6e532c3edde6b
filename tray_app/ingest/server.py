"""Serving the ingest app on 127.0.0.1 with waitress.

Why waitress (docs/ingest-server.md): its front end reads requests asynchronously and
hands a worker thread only a complete request, so a slow or stalled client holds a
socket, never a worker; it has per-connection timeouts, a connection limit and body
size limits; it is pure Python, maintained, and runs on Linux, macOS and Windows.
Its own error pages (bad HTTP, too large) are made JSON here, like ours, and are
followed by a lingering close (:class:`_JsonChannel`), so that a client still sending a
refused body reads its answer instead of a connection reset.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from typing import Any, Final

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask

from ..core import MAX_BODY_BYTES
from .wsgi_app import LoopbackApp

HOST = "127.0.0.1"

# After refusing a request on its head (a body over the limit, malformed HTTP), the
# connection reads and discards what the client still sends before it is closed: at
# most LINGER_BYTES, for at most LINGER_SECONDS in all, and LINGER_IDLE_SECONDS without
# data. Closing with unread data makes the kernel reset the connection, which discards
# the answer the client has not read yet. docs/ingest-server.md, "Refused bodies".
LINGER_BYTES: Final = 64 * 1024 * 1024
LINGER_SECONDS: Final = 10.0
LINGER_IDLE_SECONDS: Final = 2.0
# Where discarded bytes go. Only the server loops write it, and what lands there is never
# read, so all servers (and their threads) can share one.
_SINK: Final = bytearray(256 * 1024)

# Waitress warns "Task queue depth is N" whenever a request waits for a worker; under
# any burst that is normal, and it would drown the log.
logging.getLogger("waitress.queue").setLevel(logging.ERROR)


class _JsonErrorTask(ErrorTask):  # type: ignore[misc]
    """Waitress's own errors (malformed request, body or headers too large) as JSON."""

    def execute(self) -> None:
        error = self.request.error
        codes = {400: "bad_request", 413: "too_large", 431: "headers_too_large", 501: "not_implemented"}
        code = codes.get(error.code, "bad_request")
        message = f"{error.reason}: {error.body}"
        if error.code == 413:  # waitress names its own limit, a little over ours
            message = f"The body is over {MAX_BODY_BYTES} bytes (1 MiB), the most accepted; send less at a time."
        body = json.dumps({"error": code, "message": message}).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _JsonChannel(HTTPChannel):  # type: ignore[misc]
    """Waitress's channel with JSON errors and a lingering close after them.

    Waitress refuses a request on its head alone (a ``Content-Length`` over
    ``max_request_body_size``, a chunked body that grows over it, malformed HTTP): it
    answers, then closes the socket at once, while the client is usually still sending
    the body. Closing a socket with unread data makes the kernel send a reset, and the
    reset makes the client's system discard the answer it has not read yet: the client
    sees "connection reset" or "broken pipe", never why. So after such an answer this
    channel shuts down its sending side (the client sees the answer end) and goes on
    reading and discarding, as HTTP servers do (RFC 9112, section 9.6), until the
    client closes, or it sent :data:`LINGER_BYTES`, or :data:`LINGER_SECONDS` passed, or
    :data:`LINGER_IDLE_SECONDS` passed without data; then it closes.
    """

    error_task_class = _JsonErrorTask

    _refused = False  # a request was refused on its head: its body may still be coming
    _lingering = False  # answered and shut for sending; discarding what still comes
    _lingered = False  # the lingering is over (or was never possible): close for real
    _linger_end = 0.0  # time.monotonic() deadlines of the lingering
    _linger_idle_end = 0.0
    _discarded = 0

    def service(self) -> None:
        # On a worker thread; the loop reads the flag only once the answer is flushed.
        if self.requests and self.requests[0].error is not None:
            self._refused = True
        super().service()

    def handle_close(self) -> None:
        if self._refused and not self._lingered and not self._lingering and self._may_linger():
            self._start_lingering()
            return
        self._lingering = False
        self._lingered = True
        super().handle_close()

    def _may_linger(self) -> bool:
        # Only once the answer has gone out whole and the connection is still up.
        return bool(self.connected and self.socket is not None and not self.total_outbufs_len)

    def _start_lingering(self) -> None:
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:  # the client is gone already
            self._lingered = True
            super().handle_close()
            return
        now = time.monotonic()
        self._lingering = True
        self._linger_end = now + LINGER_SECONDS
        self._linger_idle_end = now + LINGER_IDLE_SECONDS
        self.will_close = False
        self.close_when_flushed = False
        self.last_activity = time.time()

    def readable(self) -> bool:
        if self._lingering:
            # The loop asks every turn (at least once a second): the deadlines are kept here.
            now = time.monotonic()
            if now >= self._linger_end or now >= self._linger_idle_end:
                self.will_close = True  # writable() now, and handle_write() closes
                return False
            return True
        return bool(super().readable())

    def handle_read(self) -> None:
        if not self._lingering:
            super().handle_read()
            return
        try:
            count = self.socket.recv_into(_SINK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.handle_close()
            return
        if not count:  # the client closed: all it sent has been read
            self.handle_close()
            return
        self._discarded += count
        self._linger_idle_end = time.monotonic() + LINGER_IDLE_SECONDS
        self.last_activity = time.time()
        if self._discarded >= LINGER_BYTES:
            self.handle_close()

    def send_continue(self) -> None:
        # Waitress (3.0.2) answers "Expect: 100-continue" by marking the request not
        # completed, to wait for the body; a request that is already complete (no body,
        # or refused for its headers, like a Content-Length over the limit) then waits
        # forever and is closed unanswered. Such a request gets its final answer instead.
        if self.request.completed:
            self.request.expect_continue = False
            return
        super().send_continue()


class _Server(TcpWSGIServer):  # type: ignore[misc]
    channel_class = _JsonChannel

    def bind_server_socket(self) -> None:
        # A port that is taken (the OTLP port, say) must leave nothing behind: waitress has
        # started its worker threads and opened its socket and wake-up pipe by now.
        try:
            super().bind_server_socket()
        except OSError:
            self.close()
            self.trigger.close()
            self.task_dispatcher.shutdown()
            raise


class IngestServer:
    """An app of the endpoint (the native API, or the OTLP receiver) on 127.0.0.1:``port``
    (0 picks a free port), served from a thread named ``name``. Binding happens here: a
    port that is taken raises :class:`OSError`."""

    def __init__(self, app: LoopbackApp, port: int = 0, *, name: str = "ingest-server", **adjustments: Any) -> None:
        settings: dict[str, Any] = {
            "host": HOST,
            "port": port,
            "threads": 4,
            "connection_limit": 200,
            "channel_timeout": 30,  # seconds a connection may sit idle or half-sent
            "cleanup_interval": 10,
            # waitress answers (JSON, above) bodies over this without reading them;
            # the app gives the exact 1 MiB limit its own answer.
            "max_request_body_size": MAX_BODY_BYTES + 64 * 1024,
            "max_request_header_size": 64 * 1024,
            # Keep request bodies in memory: reports must not spill into temp files.
            "inbuf_overflow": 2 * MAX_BODY_BYTES,
            "asyncore_use_poll": True,
            "ident": "telemetry-tray",
            "expose_tracebacks": False,
        }
        settings.update(adjustments)
        self.app = app
        self.name = name
        self._server = _Server(app, **settings)
        self.port: int = int(self._server.effective_port)
        app.port = self.port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # run() ends with an error once close() has shut the socket; that is the stop.
        with contextlib.suppress(OSError):
            self._server.run()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listening socket and every connection (idle keep-alives included)
        on the server's own thread, so its loop ends at once."""
        if self._thread is None or not self._thread.is_alive():
            self._server.close()
        else:
            self._server.trigger.pull_trigger(lambda: wasyncore.close_all(self._server._map))
            self._thread.join(timeout)
        self._server.task_dispatcher.shutdown()
