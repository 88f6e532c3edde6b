"""A tiny Sentry receiver on 127.0.0.1 that records what a stock ``sentry-sdk`` sends.

It answers every POST 200 ``{"id": …}`` (what Sentry answers, so the SDK neither logs an
error nor backs off) and records the path, the query, the headers and the body exactly as
they came (still compressed: decoding them is what the tests test). Used as
``with capture() as server: ... server.dsn("KEY") ... server.received``, or through
:func:`run_sentry_script`, which runs a program using a stock SDK against it.

:func:`run_sentry_script` can hide the ``brotli`` module from the program (a folder first on
``PYTHONPATH`` whose ``brotli.py`` raises ``ImportError``): sentry-python compresses with
brotli when it can import it and with gzip otherwise (``sentry_sdk/transport.py``), so both
of the SDK's own choices can be had without touching its options.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit

MAX_BODY = 16 * 1024 * 1024
BLOCKED_BROTLI = 'raise ImportError("brotli is hidden from this program by the test")\n'

# Values a stock SDK sends by default and the tray must never keep.
PLANTED_SECRET = "PLANTED-SECRET-1234"  # a local variable's value (sentry's scrubber lets "draft_note" through)
PLANTED_USER = "planteduser"  # in the app's absolute paths
PLANTED_HOST = "planted-host"  # server_name
PLANTED_CRUMB = "opened-planted-document"  # a breadcrumb
PLANTED_VALUES = (PLANTED_SECRET, PLANTED_USER, PLANTED_HOST, PLANTED_CRUMB)

# An app with a stock sentry-sdk: photoedit's export fails inside a json.loads callback, so the
# stack has the app's frames (main, export_image, _check) around the standard library's.
# ``main.py crash`` captures it; ``attach`` adds an attachment first; ``plain`` sends it
# uncompressed (sentry-sdk's own compression-level option); ``session`` ends a session too.
APP_MAIN = Template("""
import sys

import sentry_sdk

from photoedit.export import ExportError, export_image

mode = sys.argv[1]
options = {"_experiments": {"transport_compression_level": 0}} if mode == "plain" else {}
sentry_sdk.init(server_name="$host", release="photoedit@3.1.4", environment="production", **options)
sentry_sdk.set_tag("plan", "pro")
sentry_sdk.add_breadcrumb(message="$crumb /home/$user/Pictures/holiday.png", category="io")
if mode == "attach":
    sentry_sdk.get_isolation_scope().add_attachment(
        bytes=b"MDMP\\x93\\xa7 memory of $secret", filename="crash.dmp", content_type="application/octet-stream"
    )
if mode == "session":
    sentry_sdk.get_isolation_scope().start_session()
try:
    export_image("/home/$user/Pictures/holiday.png")
except ExportError:
    sentry_sdk.capture_exception()
if mode == "session":
    sentry_sdk.get_isolation_scope().end_session()
sentry_sdk.flush(10)
""").substitute(host=PLANTED_HOST, crumb=PLANTED_CRUMB, user=PLANTED_USER, secret=PLANTED_SECRET)

APP_EXPORT = Template("""
import json


class ExportError(Exception):
    pass


def _check(obj):
    if "width" in obj:
        raise ExportError("could not export the image: it has no layers")
    return obj


def export_image(path):
    draft_note = "$secret"
    width = 640
    return json.loads('{"width": %d}' % width, object_hook=_check), path, draft_note
""").substitute(secret=PLANTED_SECRET)


def planted_app(root: Path) -> Path:
    """Write the app under ``root/home/<planted user>/app/`` and return its ``main.py``."""
    folder = root / "home" / PLANTED_USER / "app"
    (folder / "photoedit").mkdir(parents=True)
    (folder / "photoedit" / "__init__.py").write_text("")
    (folder / "photoedit" / "export.py").write_text(APP_EXPORT)
    (folder / "main.py").write_text(APP_MAIN)
    return folder / "main.py"


@dataclass(frozen=True)
class Captured:
    path: str  # without the query
    query: str
    headers: dict[str, str]  # names lowercased
    body: bytes  # as sent: still compressed when the SDK compressed it

    @property
    def encoding(self) -> str:
        return self.headers.get("content-encoding", "identity")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    received: list[Captured]

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._chunked()
        else:
            body = self.rfile.read(min(int(headers.get("content-length", "0")), MAX_BODY))
        target = urlsplit(self.path)
        self.server.received.append(Captured(target.path, target.query, headers, body))
        answer = b'{"id":"00000000000000000000000000000000"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()


class Capture:
    def __init__(self, server: _Server) -> None:
        self._server = server

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def dsn(self, key: str, project: int = 1) -> str:
        return f"http://{key}@127.0.0.1:{self.port}/{project}"

    @property
    def received(self) -> list[Captured]:
        return list(self._server.received)

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Captured]:
        deadline = time.monotonic() + timeout
        while len(self._server.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received


@contextmanager
def capture() -> Iterator[Capture]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Capture(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass(frozen=True)
class Sent:
    """What one run of a program using sentry-sdk sent, and what it printed."""

    requests: list[Captured]
    stdout: str
    stderr: str


def run_sentry_script(
    script: Path,
    *,
    key: str = "tok123",
    brotli: bool = True,
    expect: int = 1,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> Sent:
    """Run ``script`` (in its own folder) with this interpreter against a fresh :func:`capture`
    server, ``SENTRY_DSN=http://KEY@127.0.0.1:PORT/1`` and no other ``SENTRY_`` variable of this
    session; it must exit 0 having sent ``expect`` requests. ``brotli=False`` hides the brotli
    module from it, so a stock SDK falls back to gzip."""
    with capture() as server, tempfile.TemporaryDirectory(prefix="no-brotli-") as blocker:
        variables = {key_: value for key_, value in os.environ.items() if not key_.startswith("SENTRY_")}
        variables.pop("PYTHONPATH", None)
        variables["SENTRY_DSN"] = server.dsn(key)
        if not brotli:
            Path(blocker, "brotli.py").write_text(BLOCKED_BROTLI)
            variables["PYTHONPATH"] = blocker
        variables.update(env or {})
        result = subprocess.run(
            [sys.executable, str(script), *args],
            cwd=script.parent,
            env=variables,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        requests = server.wait_for(expect)
    assert len(requests) == expect, [(item.path, item.headers) for item in requests]
    return Sent(requests, result.stdout, result.stderr)
