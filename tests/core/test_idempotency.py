"""A report request sent again (its answer lost, or spooled too, or a spool file drained
twice around a crash) is stored once: the request's Idempotency-Key."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.builders import allowed, tiny
from tests.support.processes import post, wait_for
from tray_app.client import TelemetryClient
from tray_app.core import Broker, Locations
from tray_app.core.broker import INGEST_KEY_TTL, hash_token
from tray_app.core.errors import ConflictError
from tray_app.core.schedules import Housekeeper
from tray_app.core.storage.spool import Spool
from tray_app.ingest.instance import Instance

EVENT = {"event": "a"}


def _stored(broker: Broker) -> int:
    return sum(batch.reports for batch in broker.pending())


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker.open(Locations.under(tmp_path / "home"))
    yield b
    b.close()


def test_the_same_key_is_stored_once_and_answered_alike(broker: Broker) -> None:
    app = tiny()
    allowed(broker, app)
    first = broker.ingest(app.app_id, [EVENT, {"event": "b", "secret": 1}], key="k1")
    again = broker.ingest(app.app_id, [EVENT, {"event": "b", "secret": 1}], key="k1")
    assert _stored(broker) == 2
    assert again.to_obj() == first.to_obj() and again.repeated and not first.repeated
    broker.ingest(app.app_id, [EVENT], key="k2")  # another key is another request
    broker.ingest(app.app_id, [EVENT])  # and no key means no memory of it
    assert _stored(broker) == 4


def test_a_key_used_for_other_reports_is_a_conflict(broker: Broker) -> None:
    app = tiny()
    allowed(broker, app)
    broker.ingest(app.app_id, [EVENT], key="k1")
    with pytest.raises(ConflictError, match="already used for other reports"):
        broker.ingest(app.app_id, [{"event": "other"}], key="k1")
    assert _stored(broker) == 1


def test_keys_belong_to_their_app(broker: Broker) -> None:
    one, two = tiny(), tiny(app_id="org.example.two")
    allowed(broker, one)
    allowed(broker, two)
    broker.ingest(one.app_id, [EVENT], key="same")
    broker.ingest(two.app_id, [EVENT], key="same")
    assert _stored(broker) == 2


def test_keys_are_forgotten_after_their_time(tmp_path: Path) -> None:
    now = [datetime(2026, 11, 24, 12, tzinfo=UTC)]
    broker = Broker.open(Locations.under(tmp_path / "home"), lambda: now[0])
    app = tiny(cadence="weekly")
    allowed(broker, app)
    broker.ingest(app.app_id, [EVENT], key="k1")
    now[0] += INGEST_KEY_TTL - timedelta(minutes=1)
    broker.forget_request_keys()
    assert broker.ingest(app.app_id, [EVENT], key="k1").repeated
    now[0] += timedelta(minutes=2)
    broker.tidy()  # what every CLI command does: keys stay (the spool may still hold a resend)
    assert broker.ingest(app.app_id, [EVENT], key="k1").repeated
    broker.forget_request_keys()
    assert not broker.ingest(app.app_id, [EVENT], key="k1").repeated  # a resend this late is new
    broker.close()


def test_a_request_spooled_before_a_long_time_off_is_still_stored_once(tmp_path: Path) -> None:
    # Stored, its answer lost, spooled under its key; the tray then off for longer than
    # the keys are kept: the first round drains the spool before any key is forgotten.
    now = [datetime(2026, 11, 24, 12, tzinfo=UTC)]
    locations = Locations.under(tmp_path / "home")
    broker = Broker.open(locations, lambda: now[0])
    app = tiny(cadence="weekly")
    token = allowed(broker, app)
    broker.ingest(app.app_id, [EVENT, EVENT], key="lost-answer")
    spool = Spool(locations.spool)
    spool.write(app.app_id, hash_token(token), [EVENT, EVENT], key="lost-answer")
    now[0] += INGEST_KEY_TTL * 3
    Housekeeper(broker, spool).run_once()
    assert spool.files() == []
    assert sum(b.reports for b in broker.pending()) == 2
    broker.close()


def test_the_same_request_after_a_new_manifest_version_is_still_the_same_request(broker: Broker) -> None:
    app = tiny()
    token = allowed(broker, app)
    first = broker.ingest(app.app_id, [{"event": "a", "n": 3}], key="k1")
    broker.register(tiny(version=2, fields=[{"name": "event", "type": "string", "description": "e"}]), token=token)
    again = broker.ingest(app.app_id, [{"event": "a", "n": 3}], key="k1")  # "n" is undeclared now
    assert again.repeated and again.to_obj() == first.to_obj()


def test_the_endpoint_takes_the_header_and_checks_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    instance = Instance(Locations.under(home))
    endpoint = instance.start()
    try:
        broker = instance.broker
        assert broker is not None
        app = tiny()
        token = allowed(broker, app)
        body = {"reports": [EVENT, EVENT]}
        first = post(endpoint.url, "/v1/reports", body, token, key="3f2a-01")
        assert first == post(endpoint.url, "/v1/reports", body, token, key="3f2a-01")
        assert first[0] == 202 and _stored(broker) == 2
        status, answer = post(endpoint.url, "/v1/reports", {"reports": [EVENT]}, token, key="3f2a-01")
        assert (status, answer["error"]) == (409, "conflict")
        for bad in ("", "has space", "x" * 129, "naïve"):
            status, answer = post(endpoint.url, "/v1/reports", body, token, key=bad or " ")
            assert (status, answer["error"]) == (400, "bad_request"), bad
            assert "Idempotency-Key" in answer["message"]
        assert _stored(broker) == 2
    finally:
        instance.stop()


def test_a_spool_file_drained_twice_around_a_crash_is_stored_once(tmp_path: Path) -> None:
    locations = Locations.under(tmp_path / "home")
    broker = Broker.open(locations)
    app = tiny()
    token = allowed(broker, app)
    spool = Spool(locations.spool)
    written = spool.write(app.app_id, hash_token(token), [EVENT, EVENT, EVENT], key="chunk-1")
    kept = tmp_path / "copy.json"
    shutil.copy(written, kept)
    assert broker.drain_spool(spool).accepted == 3
    shutil.copy(kept, written)  # as if the process died after storing, before deleting the file
    assert broker.drain_spool(spool).accepted == 3  # answered as before ...
    assert _stored(broker) == 3  # ... and stored once
    assert spool.files() == []
    broker.close()


class _AnswerEater:
    """A loopback proxy in front of the instance that forwards the first request and
    throws its answer away (the connection reset), like a timeout after the commit."""

    def __init__(self, target_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        self.eaten = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.target_port)) as upstream:
            client.settimeout(10)
            upstream.settimeout(10)
            while True:
                request = _read_message(client)
                if not request:
                    return
                # The instance checks Host against its own port (DNS rebinding): say it.
                request = request.replace(
                    f"127.0.0.1:{self.port}".encode(), f"127.0.0.1:{self.target_port}".encode(), 1
                )
                upstream.sendall(request)
                answer = _read_message(upstream)
                if self.eaten == 0:
                    self.eaten += 1
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return  # stored upstream; the client never hears of it
                client.sendall(answer)

    def close(self) -> None:
        self.listener.close()


def _read_message(sock: socket.socket) -> bytes:
    """One HTTP/1.1 message with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_the_sdk_resends_a_request_whose_answer_was_lost_and_it_is_stored_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    instance = Instance(Locations.under(home))
    endpoint = instance.start()
    proxy = _AnswerEater(int(endpoint.url.rsplit(":", 1)[1]))
    try:
        broker = instance.broker
        assert broker is not None
        app = tiny()
        token = allowed(broker, app)
        client = TelemetryClient(app.app_id, token, home=home, url=f"http://127.0.0.1:{proxy.port}",
                                 flush_interval=3600)  # fmt: skip
        for i in range(10):
            client.report({"event": f"e{i}"})
        assert client.flush()
        client.report({"event": "later"})  # the next request wakes the instance, which drains the spool
        assert client.flush()
        client.close()
        assert proxy.eaten == 1
        assert wait_for(lambda: _stored(broker) == 11 and Spool(Locations.under(home).spool).files() == [], 10), (
            _stored(broker)
        )
        assert _stored(broker) == 11  # the 10 of the eaten answer once, not twice
    finally:
        proxy.close()
        instance.stop()
