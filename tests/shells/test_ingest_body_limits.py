"""A body over the limit gets its 413, not a connection reset: the lingering close.

The server refuses a too-large body on its head, before reading it; the client (urllib
here, as most) is still sending it and reads the answer only afterwards. Closed at once,
the connection would be reset and the answer lost; so the server reads and discards the
rest, within bounds (docs/ingest-server.md, "Refused bodies"), before closing.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import PHOTOEDIT, Clock
from tests.support.processes import Proc, post, wait_for
from tray_app import __version__
from tray_app.core import Broker, Locations, load_manifest
from tray_app.core.rules.intake import MAX_BODY_BYTES
from tray_app.ingest import server as server_module
from tray_app.ingest.routes import IngestApp
from tray_app.ingest.server import IngestServer

MIB = 1024 * 1024
TIMES = 20


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The real program (``run --headless``), its URL and an app's token."""
    proc = Proc(tmp_path_factory.mktemp("limits") / "home")
    try:
        status, body = post(proc.url, "/v1/apps", load_manifest(PHOTOEDIT).to_obj())
        assert status == 201, body
        yield proc.url, str(body["token"])
    finally:
        proc.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IngestServer]:
    """The server in this process, for the tests that change the lingering bounds."""
    broker = Broker.open(Locations.under(tmp_path / "home"), Clock(datetime(2026, 11, 24, 10, 30, tzinfo=UTC)))
    server = IngestServer(IngestApp(broker, __version__), 0)
    server.start()
    yield server
    server.stop()
    broker.close()


def send_with_urllib(url: str, body: bytes, token: str | None) -> tuple[int, Any] | str:
    """POST ``body`` to /v1/reports: the status and JSON answer, or how the connection failed."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + "/v1/reports", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except (urllib.error.URLError, OSError) as exc:
        return repr(getattr(exc, "reason", exc))


def head(port: int, length: int, *, token: str | None = None) -> bytes:
    lines = [
        "POST /v1/reports HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket) -> tuple[int, Any]:
    """One answer (with its Content-Length), read without waiting for the connection to close."""
    buf = b""
    while True:
        top, sep, rest = buf.partition(b"\r\n\r\n")
        if sep:
            length = next(
                int(line.split(b":")[1]) for line in top.split(b"\r\n") if line.lower().startswith(b"content-length:")
            )
            if len(rest) >= length:
                return int(top.split()[1]), json.loads(rest[:length])
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer: {buf!r}"
        buf += chunk


def is_too_large(answer: tuple[int, Any] | str) -> bool:
    if isinstance(answer, str):
        return False
    status, body = answer
    return (
        status == 413
        and set(body) == {"error", "message"}
        and body["error"] == "too_large"
        and isinstance(body["message"], str)
        and len(body["message"]) > 10
    )


@pytest.mark.parametrize("size", [2 * MIB, 50 * MIB], ids=["2MiB", "50MiB"])
@pytest.mark.parametrize("with_token", [True, False], ids=["token", "no-token"])
def test_urllib_gets_the_413_every_time(instance: tuple[str, str], size: int, with_token: bool) -> None:
    url, token = instance
    body = b"x" * size
    answers = [send_with_urllib(url, body, token if with_token else None) for _ in range(TIMES)]
    failed = [answer for answer in answers if not is_too_large(answer)]
    assert failed == [], f"{len(failed)} of {TIMES} did not get the 413: {failed[:3]}"
    # The instance is still up and serving.
    assert post(url, "/v1/reports", {"event": "crop", "app_version": "3.1.4"}, token)[0] == 202


def send_chunked(port: int, size: int) -> tuple[int, Any] | str:
    """POST ``size`` bytes in chunks of 64 KiB with http.client; as :func:`send_with_urllib`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        chunks = (b"x" * 65536 for _ in range(size // 65536))
        conn.request("POST", "/v1/reports", body=chunks, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    except OSError as exc:
        return repr(exc)
    finally:
        conn.close()


def test_a_chunked_body_over_the_limit_gets_its_413(server: IngestServer) -> None:
    # No Content-Length to refuse: waitress stops at the limit as the chunks come in.
    answers = [send_chunked(server.port, 8 * MIB) for _ in range(TIMES)]
    failed = [answer for answer in answers if not is_too_large(answer)]
    assert failed == [], f"{len(failed)} of {TIMES} did not get the 413: {failed[:3]}"


def connections(server: IngestServer) -> int:
    """How many client connections the server holds open."""
    return len(server._server.active_channels)


def test_a_stalled_refused_upload_is_still_closed(server: IngestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "LINGER_IDLE_SECONDS", 1.0)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head(server.port, 2 * MIB) + b"x" * 100_000)  # and then nothing more
        assert is_too_large(read_answer(sock))
        answered = time.monotonic()
        assert sock.recv(65536) == b""  # the answer is whole: the server shut its sending side
        assert connections(server) == 1  # and still reads, for a while
        assert wait_for(lambda: connections(server) == 0, 5)
        assert 0.9 < time.monotonic() - answered < 4  # 1 s idle, checked at least once a second


def test_lingering_ends_after_its_byte_budget(server: IngestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "LINGER_BYTES", 4 * MIB)
    monkeypatch.setattr(server_module, "LINGER_IDLE_SECONDS", 30.0)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head(server.port, 100 * MIB))
        assert is_too_large(read_answer(sock))
        sent, chunk = 0, b"x" * 65536
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < 100 * MIB:
                sent += sock.send(chunk)
        assert MAX_BODY_BYTES < sent < 100 * MIB  # cut off after the budget (plus socket buffers)
    assert wait_for(lambda: connections(server) == 0, 5)


def test_lingering_ends_after_its_time(server: IngestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "LINGER_SECONDS", 1.0)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head(server.port, 100 * MIB))
        assert is_too_large(read_answer(sock))
        started = time.monotonic()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while time.monotonic() - started < 8:  # a trickle keeps it from going idle
                sock.send(b"x" * 100)
                time.sleep(0.05)
        assert 0.9 < time.monotonic() - started < 4
    assert wait_for(lambda: connections(server) == 0, 5)
