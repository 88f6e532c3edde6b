"""Serving the ingest app on 127.0.0.1 with waitress.

Why waitress (docs/ingest-server.md): its front end reads requests asynchronously and
hands a worker thread only a complete request, so a slow or stalled client holds a
socket, never a worker; it has per-connection timeouts, a connection limit and body
size limits; it is pure Python, maintained, and runs on Linux, macOS and Windows.
Its own error pages (bad HTTP, too large) are made JSON here, like ours.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask

from ..core.intake import MAX_BODY_BYTES
from .app import IngestApp

HOST = "127.0.0.1"

# Waitress warns "Task queue depth is N" whenever a request waits for a worker; under
# any burst that is normal, and it would drown the log.
logging.getLogger("waitress.queue").setLevel(logging.ERROR)


class _JsonErrorTask(ErrorTask):  # type: ignore[misc]
    """Waitress's own errors (malformed request, body or headers too large) as JSON."""

    def execute(self) -> None:
        error = self.request.error
        codes = {400: "bad_request", 413: "too_large", 431: "headers_too_large", 501: "not_implemented"}
        code = codes.get(error.code, "bad_request")
        body = json.dumps({"error": code, "message": f"{error.reason}: {error.body}"}).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _JsonChannel(HTTPChannel):  # type: ignore[misc]
    error_task_class = _JsonErrorTask

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


class IngestServer:
    """The endpoint on 127.0.0.1:``port`` (0 picks a free port), served from a thread."""

    def __init__(self, app: IngestApp, port: int = 0, **adjustments: Any) -> None:
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
        self._server = _Server(app, **settings)
        self.port: int = int(self._server.effective_port)
        app.port = self.port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="ingest-server", daemon=True)
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
