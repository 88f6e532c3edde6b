"""The ingest endpoint over real HTTP on 127.0.0.1: every route, every error."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import PHOTOEDIT, Clock
from tray_app import __version__
from tray_app.core import Broker, Locations, load_manifest
from tray_app.ingest.routes import IngestApp
from tray_app.ingest.server import IngestServer

APP = "org.example.photoedit"
MANIFEST = load_manifest(PHOTOEDIT).to_obj()
GOOD = {"event": "crop", "app_version": "3.1.4"}


class Api:
    def __init__(self, server: IngestServer, broker: Broker) -> None:
        self.server = server
        self.broker = broker
        self.port = server.port

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> tuple[int, Any, http.client.HTTPResponse]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        assert response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(raw), response

    def post(self, path: str, obj: object, token: str | None = None, **kw: Any) -> tuple[int, Any]:
        status, body, _ = self.call("POST", path, json.dumps(obj).encode(), token=token, **kw)
        return status, body

    def register(self) -> str:
        status, body = self.post("/v1/apps", MANIFEST)
        assert status == 201
        return str(body["token"])


@pytest.fixture
def api(tmp_path: Path, clock: Clock) -> Iterator[Api]:
    broker = Broker.open(Locations.under(tmp_path / "home"), clock)
    server = IngestServer(IngestApp(broker, __version__), 0, channel_timeout=2, cleanup_interval=1)
    server.start()
    yield Api(server, broker)
    server.stop()
    broker.close()


def _is_error(body: Any, code: str) -> None:
    assert set(body) >= {"error", "message"}
    assert body["error"] == code
    assert isinstance(body["message"], str) and len(body["message"]) > 10


def test_health(api: Api) -> None:
    status, body, _ = api.call("GET", "/v1/health")
    assert (status, body) == (200, {"status": "ok", "version": __version__})


def test_register_then_reports_are_held_until_consent(api: Api) -> None:
    status, body = api.post("/v1/apps", MANIFEST)
    assert status == 201
    assert set(body) == {"app_id", "token", "status"}
    assert body["app_id"] == APP and body["status"] == "awaiting_consent" and len(body["token"]) >= 43
    token = body["token"]
    status, body = api.post("/v1/reports", {"reports": [GOOD, {**GOOD, "mouse": 1}, {"event": "nope"}]}, token)
    assert status == 202
    assert body == {
        "accepted": 2,
        "rejected": [{"index": 2, "error": "field 'event': 'nope' is not one of the declared values"}],
        "dropped_fields": ["mouse"],
    }
    api.broker.close_batches(force=True)
    (held,) = api.broker.pending()
    assert held.status == "held" and held.reports == 2
    api.broker.set_consent(APP, True)
    assert api.broker.pending()[0].status == "pending"


def test_one_report_object_is_accepted(api: Api) -> None:
    token = api.register()
    assert api.post("/v1/reports", GOOD, token) == (202, {"accepted": 1, "rejected": [], "dropped_fields": []})


def test_blocked_apps_are_refused_and_their_reports_deleted(api: Api) -> None:
    token = api.register()
    api.post("/v1/reports", GOOD, token)
    api.broker.set_consent(APP, False)
    status, body = api.post("/v1/reports", GOOD, token)
    assert status == 403
    _is_error(body, "app_blocked")
    assert api.broker.pending() == []


def test_app_id_taken_by_another_token(api: Api) -> None:
    token = api.register()
    status, body = api.post("/v1/apps", {**MANIFEST, "version": 4})
    assert status == 409
    _is_error(body, "conflict")
    status, body = api.post("/v1/apps", {**MANIFEST, "version": 4}, token="x" * 43)
    assert status == 409
    status, body = api.post("/v1/apps", {**MANIFEST, "version": 4}, token)
    assert status == 201 and body["token"] == token
    assert api.broker.app(APP).manifest.version == 4


@pytest.mark.parametrize(
    ("manifest", "status", "code", "words"),
    [
        ({**MANIFEST, "cadence": "monthly"}, 422, "invalid_manifest", "'cadence'"),
        ({**MANIFEST, "endpoint": "http://evil.example.com/"}, 422, "invalid_manifest", "'endpoint'"),
        ([1, 2], 422, "invalid_manifest", "object"),
        ({**MANIFEST, "fields": [{"name": "x", "type": "string", "description": "d", "sensitivity": None}]}, 422,
         "invalid_manifest", "null"),
    ],
)  # fmt: skip
def test_invalid_manifests(api: Api, manifest: object, status: int, code: str, words: str) -> None:
    got, body = api.post("/v1/apps", manifest)
    assert got == status
    _is_error(body, code)
    assert words in body["message"]
    assert api.broker.apps() == []


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        ("/v1/apps", b"{nope", {}, 400, "bad_json"),
        ("/v1/apps", b'{"app_id": "a.b", "app_id": "c.d"}', {}, 400, "bad_json"),
        ("/v1/apps", b"\xff\xfe", {}, 400, "bad_json"),
        ("/v1/apps", b"{}", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ("/v1/apps", b"x" * 300_000, {}, 413, "too_large"),
    ],
)
def test_bad_registration_bodies(
    api: Api, path: str, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    got, answer, _ = api.call("POST", path, body, headers)
    assert got == status
    _is_error(answer, code)
    assert api.broker.apps() == []


def _big_body() -> bytes:
    """Just over our 1 MiB limit, and under the server's own hard cap (1 MiB + 64 KiB),
    so the answer is ours and comes after the whole body was read."""
    report = {"event": "crop", "os_version": "x" * 4000}
    count = 1
    while len(json.dumps({"reports": [report] * count})) <= 1024 * 1024:
        count += 1
    body = json.dumps({"reports": [report] * count}).encode()
    assert 1024 * 1024 < len(body) < 1024 * 1024 + 64 * 1024
    return body


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{nope", {}, 400, "bad_json"),
        (b"[]", {}, 400, "bad_json"),
        (b'{"event": NaN}', {}, 400, "bad_json"),
        (b'{"event": "a", "event": "b"}', {}, 400, "bad_json"),
        (b"[" * 100_000 + b"]" * 100_000, {}, 400, "bad_json"),
        (b"{}", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b"{}", {"Content-Type": ""}, 415, "unsupported_media_type"),
        (b"{}", {"Content-Encoding": "br"}, 415, "unsupported_media_type"),
        (_big_body(), {}, 413, "too_large"),
        (gzip.compress(_big_body()), {"Content-Encoding": "gzip"}, 413, "too_large"),
        (gzip.compress(b" " * 50_000_000), {"Content-Encoding": "gzip"}, 413, "too_large"),
        (b"not gzip", {"Content-Encoding": "gzip"}, 400, "bad_json"),
        (json.dumps([GOOD] * 10_001).encode(), {}, 413, "too_large"),
        (json.dumps([{"event": 1}, "x"]).encode(), {}, 422, "all_rejected"),
    ],
)
def test_bad_report_bodies_change_nothing(
    api: Api, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    token = api.register()
    api.broker.set_consent(APP, True)
    got, answer, _ = api.call("POST", "/v1/reports", body, headers, token=token)
    assert got == status, answer
    _is_error(answer, code)
    if code == "all_rejected":
        assert [r["index"] for r in answer["rejected"]] == [0, 1]
    assert api.broker.pending() == []


def test_gzip_bodies_are_accepted(api: Api) -> None:
    token = api.register()
    body = gzip.compress(json.dumps({"reports": [GOOD] * 50}).encode())
    status, answer, _ = api.call("POST", "/v1/reports", body, {"Content-Encoding": "gzip"}, token=token)
    assert status == 202 and answer["accepted"] == 50


@pytest.mark.parametrize("auth", [None, "Bearer", "Bearer wrong-token", "Basic dXNlcjpwYXNz"])
def test_bad_tokens(api: Api, auth: str | None) -> None:
    api.register()
    headers = {"Authorization": auth} if auth else {}
    status, body, response = api.call("POST", "/v1/reports", json.dumps(GOOD).encode(), headers)
    assert status == 401
    _is_error(body, "unauthorized")
    assert response.getheader("WWW-Authenticate", "").startswith("Bearer")
    assert api.broker.pending() == []


def test_unknown_routes_and_methods(api: Api) -> None:
    status, body, _ = api.call("GET", "/v1/nope")
    assert status == 404
    _is_error(body, "not_found")
    status, body, response = api.call("GET", "/v1/reports")
    assert status == 405
    _is_error(body, "method_not_allowed")
    assert response.getheader("Allow") == "POST"
    status, _, _ = api.call("DELETE", "/v1/apps")
    assert status == 405


def test_web_pages_cannot_reach_it(api: Api) -> None:
    token = api.register()
    status, body, _ = api.call("POST", "/v1/reports", b"{}", {"Origin": "https://evil.example"}, token=token)
    assert status == 403
    _is_error(body, "forbidden_origin")
    status, body, _ = api.call("GET", "/v1/health", headers={"Host": f"rebind.evil.example:{api.port}"})
    assert status == 403
    _is_error(body, "forbidden_host")
    for host in (f"localhost:{api.port}", f"127.0.0.1:{api.port}"):
        assert api.call("GET", "/v1/health", headers={"Host": host})[0] == 200


def _raw(port: int, data: bytes) -> tuple[int, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_the_servers_own_errors_are_json_too(api: Api) -> None:
    status, body = _raw(api.port, b"GARBAGE\r\n\r\n")
    assert status == 400
    _is_error(body, "bad_request")
    status, body = _raw(
        api.port,
        b"POST /v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 50000000\r\n\r\n",
    )
    assert status == 413
    _is_error(body, "too_large")


@pytest.mark.slow
def test_a_stalled_client_does_not_stop_others(api: Api) -> None:
    token = api.register()
    stalled = []
    for _ in range(8):  # more than the worker threads
        sock = socket.create_connection(("127.0.0.1", api.port))
        sock.sendall(
            b"POST /v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"event": '
        )
        stalled.append(sock)
    trickle = socket.create_connection(("127.0.0.1", api.port))
    trickle.sendall(b"GET /v1/hea")  # headers that never finish
    started = time.monotonic()
    for _ in range(20):
        assert api.post("/v1/reports", GOOD, token)[0] == 202
    assert time.monotonic() - started < 5
    # The stalled connections are closed by the server's timeout (2 s here).
    time.sleep(3.5)
    for sock in [*stalled, trickle]:
        sock.settimeout(5)
        assert sock.recv(100) == b""
        sock.close()


def test_many_clients_at_once(api: Api) -> None:
    token = api.register()
    errors: list[object] = []

    def send() -> None:
        for _ in range(20):
            status, body = api.post("/v1/reports", {"reports": [GOOD] * 10}, token)
            if status != 202:
                errors.append(body)

    threads = [threading.Thread(target=send) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(b.reports for b in api.broker.pending()) == 10 * 20 * 10


def test_gzip_with_trailing_data_is_refused(api: Api) -> None:
    token = api.register()
    body = gzip.compress(json.dumps(GOOD).encode()) + b"trailing junk"
    status, answer, _ = api.call("POST", "/v1/reports", body, {"Content-Encoding": "gzip"}, token=token)
    assert status == 400
    _is_error(answer, "bad_json")
    assert api.broker.pending() == []


def test_a_registration_flood_is_capped_until_the_person_answers(api: Api) -> None:
    from tray_app.core.broker import MAX_AWAITING_CONSENT

    for n in range(MAX_AWAITING_CONSENT):
        status, _ = api.post("/v1/apps", {**MANIFEST, "app_id": f"org.flood.app{n}"})
        assert status == 201
    status, body = api.post("/v1/apps", {**MANIFEST, "app_id": "org.flood.one-too-many"})
    assert status == 429
    _is_error(body, "too_many_waiting")
    assert "Allow or block some first" in body["message"]
    assert api.broker.store.app("org.flood.one-too-many") is None
    assert len(api.broker.apps()) == MAX_AWAITING_CONSENT
    api.broker.set_consent("org.flood.app0", False)  # the person answers one: room for one more
    assert api.post("/v1/apps", {**MANIFEST, "app_id": "org.flood.one-too-many"})[0] == 201


def test_a_request_line_naming_another_host_is_refused(api: Api) -> None:
    # A proxy-style request line smuggles another host past the Host header check.
    status, body = _raw(api.port, f"GET http://evil.example/v1/health HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\n"
                                  "Connection: close\r\n\r\n".encode())  # fmt: skip
    assert status == 403
    _is_error(body, "forbidden_host")
    assert _raw(api.port, f"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\nConnection: close\r\n\r\n"
                          .encode())[0] == 200  # fmt: skip
