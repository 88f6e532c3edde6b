"""Fuzzing the real ingest endpoint on 127.0.0.1 over raw sockets.

Junk of every kind goes to every route: random and structured bodies, wrong methods,
wrong content types and encodings, gzip bombs, huge and deep JSON, invalid UTF-8, bad
tokens, oversized headers, foreign Host and Origin headers, malformed HTTP. Each answer
must be a clear error (a 4xx, or 501 for a transfer coding we do not speak) with a JSON
body naming what is wrong; the database must not change; and a good report sent right
after must still get 202 (the instance stays up).

Requests are written by hand because httpx and http.client refuse to send most of this.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.builders import Clock, manifest_obj
from tests.support.fuzz_inputs import Tally, junk_values, nasty_text, shown_safely
from tray_app import __version__
from tray_app.core import Broker, Locations
from tray_app.core.rules.intake import MAX_BODY_BYTES
from tray_app.ingest.routes import IngestApp
from tray_app.ingest.server import IngestServer

pytestmark = pytest.mark.slow

TALLY = Tally("endpoint")
# Each example costs a junk request, a good one and two looks at the database (~5 ms);
# the counts keep the whole file well under a minute on a busy two-core machine.
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The fuzzed app: a report without `required_event` (which no generator produces) is
# rejected, so no junk can be stored by accident.
FUZZ_MANIFEST = manifest_obj(
    app_id="org.example.fuzzed",
    fields=[
        {"name": "required_event", "type": "enum", "description": "what", "values": ["good"], "required": True},
        {"name": "event", "type": "string", "description": "what happened"},
        {"name": "n", "type": "integer", "description": "a number"},
    ],
)
GOOD_REPORT = b'{"required_event": "good", "n": 1}'
ROUTES = ["/v1/health", "/v1/apps", "/v1/reports", "/v1/wake"]
# What answers success with any body; everything else sent here must be refused.
SUCCESS = {("GET", "/v1/health"): 200, ("POST", "/v1/wake"): 202}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(port: int, data: bytes, timeout: float = 5.0) -> Answer | None:
    """Send raw bytes and read one response (skipping ``100 Continue``); None if the
    server closed or reset the connection without one."""
    buf = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # It may answer and close before reading everything; the answer may still be there.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        while True:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                if status == 100:
                    buf = rest
                    continue
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if len(rest) >= length:
                    return Answer(status, headers, rest[:length])
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            buf += chunk


def request(
    method: bytes = b"POST",
    path: bytes = b"/v1/reports",
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    host: bytes | None = None,
    length: bool = True,
) -> bytes:
    """An HTTP/1.1 request as bytes; ``headers`` are sent as given, after Host."""
    lines = [method + b" " + path + b" HTTP/1.1"]
    if host is not None:
        lines.append(b"Host: " + host)
    lines += [name + b": " + value for name, value in headers or []]
    if length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class Endpoint:
    """The real server over a real broker and database, and what the tests see of them."""

    def __init__(self, home: Path) -> None:
        self.locations = Locations.under(home)
        self.broker = Broker.open(self.locations, Clock(datetime(2026, 11, 24, 10, 30, tzinfo=UTC)))
        self.server = IngestServer(IngestApp(self.broker, __version__), 0, channel_timeout=2, cleanup_interval=1)
        self.server.start()
        self.port = self.server.port
        self.host = f"127.0.0.1:{self.port}".encode()
        register = request(
            b"POST", b"/v1/apps", json.dumps(FUZZ_MANIFEST).encode(), self.json_headers(), host=self.host
        )
        answer = self.send(register)
        assert answer is not None and answer.status == 201, answer
        self.token: str = answer.json()["token"]
        self.broker.set_consent("org.example.fuzzed", True)

    def close(self) -> None:
        self.server.stop()
        self.broker.close()

    def send(self, data: bytes) -> Answer | None:
        return exchange(self.port, data)

    def json_headers(self, token: str | None = None) -> list[tuple[bytes, bytes]]:
        headers = [(b"Content-Type", b"application/json")]
        if token is not None:
            headers.append((b"Authorization", b"Bearer " + token.encode()))
        return headers

    def reports(self, body: bytes, *extra: tuple[bytes, bytes], host: bytes | None = None) -> bytes:
        return request(b"POST", b"/v1/reports", body, [*self.json_headers(self.token), *extra], host=host or self.host)

    def snapshot(self) -> dict[str, object]:
        """Every table's row count, and the apps and settings in full, read-only."""
        conn = sqlite3.connect(f"file:{self.locations.database}?mode=ro", uri=True)
        try:
            tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            seen: dict[str, object] = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
            seen["apps rows"] = conn.execute("SELECT * FROM apps ORDER BY app_id").fetchall()
            seen["settings rows"] = conn.execute("SELECT * FROM settings ORDER BY key").fetchall()
            return seen
        finally:
            conn.close()

    def assert_still_serving(self) -> None:
        answer = self.send(self.reports(GOOD_REPORT))
        assert answer is not None and answer.status == 202, answer
        assert answer.json()["accepted"] == 1


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    served = Endpoint(tmp_path_factory.mktemp("fuzz-endpoint") / "home")
    yield served
    served.close()
    TALLY.report()


def assert_clear_error(answer: Answer | None) -> dict[str, Any]:
    assert answer is not None, "the connection was closed without an answer"
    assert 400 <= answer.status < 500 or answer.status == 501, answer
    assert answer.headers.get("content-type") == "application/json", answer
    body = answer.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    message = body.get("message")
    assert isinstance(message, str) and len(message) > 10, body
    assert len(message) <= 2000, f"a {len(message)}-character message"
    assert shown_safely(message, multiline=True), repr(message)
    if answer.status == 501:
        assert body["error"] == "not_implemented", body
    return body


def attack(endpoint: Endpoint, data: bytes, expect: int | None = None, *, reset_ok: bool = False) -> Answer | None:
    """Send junk; it must be refused clearly and change nothing, and the instance must
    still take a good report afterwards."""
    TALLY.add()
    before = endpoint.snapshot()
    answer = endpoint.send(data)
    if not (reset_ok and answer is None):
        body = assert_clear_error(answer)
        assert answer is not None
        if expect is not None:
            assert answer.status == expect, body
    assert endpoint.snapshot() == before, "junk changed the database"
    endpoint.assert_still_serving()
    return answer


# -- bodies on every route ------------------------------------------------------------------

_METHODS = st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"FOO", b"X" * 300])
_PATHS = st.sampled_from([r.encode() for r in ROUTES]) | st.sampled_from(
    [b"/", b"/v1", b"/v1/reports/", b"/V1/REPORTS", b"/v1/reports?x=1", b"//v1/reports", b"/v1/%72eports",
     b"/v1/reports%00", b"/v1/../v1/reports", b"*", b"/" + b"a" * 5000, b"/v1/\xc3\xa9", b"/%ff%fe%202e"]
)  # fmt: skip
_CONTENT_TYPES = st.sampled_from(
    [b"application/json", b"text/plain", b"", b"application/json; charset=utf-16", b"application/x-www-form-urlencoded",
     b"multipart/form-data; boundary=x", b"application/jsonx", b"json", b"*/*", b"application/json\xff", b"\xe9"]
)  # fmt: skip
_LITERALS = [
    b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 5000, b'"\\ud800"', b'"\\udc00x"', b'"\\u0000"', b"null",
    b"[]", b"{}", b"[" * 5000, b'{"a":' * 3000, b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"tru",
]  # fmt: skip


def _json_text(obj: object) -> bytes:
    try:
        return json.dumps(obj, allow_nan=True).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError):
        return b"{}"


_REPORT_BODIES = st.one_of(
    st.binary(max_size=2048),
    junk_values.map(_json_text),
    st.lists(junk_values, max_size=5).map(lambda rs: _json_text({"reports": rs})),
    st.dictionaries(nasty_text, st.sampled_from(_LITERALS), max_size=4).map(
        lambda d: b"{" + b",".join(_json_text(k) + b":" + v for k, v in d.items()) + b"}"
    ),
)


def _wrong_manifest(key: str, value: object) -> bytes:
    # A manifest with one key of a type it can never have: always refused, never registered.
    obj = manifest_obj(app_id="org.example.never")
    if key.startswith("fields."):
        obj["fields"][0][key.split(".", 1)[1]] = value
    else:
        obj[key] = value
    return _json_text(obj)


_NOT_TEXT = junk_values.filter(lambda v: not isinstance(v, str))
_MANIFEST_BODIES = st.one_of(
    st.builds(
        _wrong_manifest, st.sampled_from(["app_id", "name", "vendor", "endpoint", "purpose", "cadence"]), _NOT_TEXT
    ),
    st.builds(
        _wrong_manifest,
        st.sampled_from(["version", "retention_days", "min_count"]),
        junk_values.filter(lambda v: isinstance(v, bool) or not isinstance(v, int)),
    ),
    st.builds(_wrong_manifest, st.just("fields"), junk_values.filter(lambda v: not isinstance(v, list) or not v)),
    st.builds(_wrong_manifest, st.sampled_from(["fields.name", "fields.type", "fields.description"]), _NOT_TEXT),
    st.builds(_wrong_manifest, st.sampled_from(["fields.required"]), _NOT_TEXT.filter(lambda v: type(v) is not bool)),
)


@FUZZ
@given(
    method=_METHODS,
    path=_PATHS,
    content_type=_CONTENT_TYPES,
    token=st.sampled_from(["valid", "wrong", None]),
    body=_REPORT_BODIES | _MANIFEST_BODIES,
)
def test_junk_to_every_route(
    endpoint: Endpoint, method: bytes, path: bytes, content_type: bytes, token: str | None, body: bytes
) -> None:
    headers = [(b"Content-Type", content_type)]
    if token is not None:
        headers.append((b"Authorization", b"Bearer " + (endpoint.token.encode() if token == "valid" else b"x" * 43)))
    data = request(method, path, body, headers, host=endpoint.host)
    success = SUCCESS.get((method.decode("latin-1"), path.decode("latin-1")))
    if success is None:
        attack(endpoint, data)
    else:  # the health check and the wake-up ignore bodies; they still change nothing
        TALLY.add()
        before = endpoint.snapshot()
        answer = endpoint.send(data)
        assert answer is not None and answer.status == success, answer
        assert endpoint.snapshot() == before


@FUZZ
@given(body=_REPORT_BODIES)
@example(body=b'{"required_event": "good\\ud800"}')
@example(body=b'{"required_event": "good", "n": 1e999}')
@example(body=b'{"required_event": "good", "required_event": "good"}')
@example(body=b'{"reports": [{"required_event": "bad"}], "x": 1}')
def test_junk_reports_from_the_real_app(endpoint: Endpoint, body: bytes) -> None:
    attack(endpoint, endpoint.reports(body))


@FUZZ
@given(body=_MANIFEST_BODIES, token=st.booleans())
def test_wrong_manifests(endpoint: Endpoint, body: bytes, token: bool) -> None:
    headers = endpoint.json_headers(endpoint.token if token else None)
    attack(endpoint, request(b"POST", b"/v1/apps", body, headers, host=endpoint.host))


# -- headers ---------------------------------------------------------------------------------

_HEADER_VALUE = st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@FUZZ
@given(
    auth=_HEADER_VALUE | st.sampled_from([b"Bearer", b"Bearer ", b"bearer  x", b"Basic dXNlcjpwYXNz", b"Bearer \xff"])
)
def test_bad_tokens(endpoint: Endpoint, auth: bytes) -> None:
    headers = [(b"Content-Type", b"application/json"), (b"Authorization", auth)]
    answer = attack(endpoint, request(b"POST", b"/v1/reports", GOOD_REPORT, headers, host=endpoint.host))
    assert answer is not None and answer.status in (400, 401), answer


@FUZZ
@given(
    host=st.sampled_from(
        [None, b"", b"127.0.0.1", b"localhost", b"evil.example", b"127.0.0.1:1", b"LOCALHOST:{port}", b"127.1:{port}",
         b"localhost.:{port}", b"[::1]:{port}x", b"0x7f.0.0.1:{port}", b"127.0.0.1:{port}.evil.example",
         b"127.0.0.1:{port}, evil.example", b"evil.example:{port}", b"127.0.0.1:0{port}", b"\xff:{port}"]
    ) | _HEADER_VALUE,
    origin=st.sampled_from([None, b"null", b"http://127.0.0.1:{port}", b"https://evil.example"]) | _HEADER_VALUE,
)  # fmt: skip
def test_foreign_hosts_and_origins(endpoint: Endpoint, host: bytes | None, origin: bytes | None) -> None:
    port = str(endpoint.port).encode()
    host = host.replace(b"{port}", port) if host is not None else None
    origin = origin.replace(b"{port}", port) if origin is not None else None
    if host == endpoint.host and not (origin or b"").strip():
        return  # that is a good request; the foreign ones are what is tested
    headers = endpoint.json_headers(endpoint.token) + ([(b"Origin", origin)] if origin is not None else [])
    answer = attack(endpoint, request(b"POST", b"/v1/reports", GOOD_REPORT, headers, host=host))
    assert answer is not None and answer.status in (400, 403), answer


@FUZZ
@given(
    content_type=_CONTENT_TYPES | _HEADER_VALUE,
    length=st.sampled_from([None, b"-1", b"+2", b"0x10", b"1e3", b"1 2", b"99999999999999999999", b"", b"2, 2"]),
)
def test_content_types_and_lengths(endpoint: Endpoint, content_type: bytes, length: bytes | None) -> None:
    headers = [(b"Authorization", b"Bearer " + endpoint.token.encode()), (b"Content-Type", content_type)]
    body = b'{"event": "x"}'  # a report the app cannot send (no required_event) whatever the type says
    if length is not None:
        headers.append((b"Content-Length", length))
    attack(endpoint, request(b"POST", b"/v1/reports", body, headers, host=endpoint.host, length=length is None))


# -- malformed HTTP ----------------------------------------------------------------------------

_REQUEST_LINES = st.sampled_from(
    [b"GARBAGE", b"POST", b"POST /v1/reports", b"POST /v1/reports HTTP/1.1 extra", b"P\x01ST /v1/reports HTTP/1.1",
     b"POST /v1/r\xe9ports HTTP/1.1", b"POST /v1/\x00 HTTP/1.1", b"PRI * HTTP/2.0", b"POST /v1/reports HTTP/0.9",
     b"POST /v1/reports HTTP/1.x", b"POST  /v1/reports  HTTP/1.1", b" POST /v1/reports HTTP/1.1",
     b"\x16\x03\x01\x02\x00", b"POST /v1/reports HTTP/1.1\x00", b"POST " + b"/" * 70_000 + b" HTTP/1.1"]
)  # fmt: skip
_HEADER_LINES = st.sampled_from(
    [b"NoColon", b"X-A : 1", b" X-Folded: 1", b"X-A: 1\x002", b"X-\xff: 1", b": empty", b"Content-Length: 5",
     b"Content-Length: 1\r\nContent-Length: 2", b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip",
     b"Transfer-Encoding: chunked, identity", b"Transfer-Encoding : chunked", b"Expect: 100-continue",
     b"Content-Encoding: gzip", b"X-Big: " + b"a" * 70_000, b"Host: evil.example"]
)  # fmt: skip


@FUZZ
@given(
    line=_REQUEST_LINES,
    headers=st.lists(_HEADER_LINES | _HEADER_VALUE.map(lambda v: b"X-Junk: " + v), max_size=4),
    body=st.binary(max_size=64),
)
@example(line=b"POST /v1/reports HTTP/1.1", headers=[b"Transfer-Encoding: chunked"], body=b"zz\r\n{}\r\n0\r\n\r\n")
@example(line=b"POST /v1/reports HTTP/1.1", headers=[b"Transfer-Encoding: chunked", b"Content-Length: 3"], body=b"")
@example(line=b"POST /v1/reports HTTP/1.1", headers=[b"Transfer-Encoding: gzip"], body=b"")
def test_malformed_http(endpoint: Endpoint, line: bytes, headers: list[bytes], body: bytes) -> None:
    # Bodies are framed so that the server never rightly waits for more (a declared body
    # longer than what came, a chunked body without its last chunk): such a request gets
    # no answer until the connection times out, which test_ingest_http checks.
    framing = b"\r\n".join(headers).lower()
    if b"chunked" in framing:
        body = b"zz\r\n" + body + b"\r\n0\r\n\r\n"  # an invalid chunk size, refused at once
    elif b"content-length: 5" in framing:
        body = body[:5].ljust(5, b" ")
    elif b"content-length" not in framing:
        headers = [*headers, b"Content-Length: %d" % len(body)]
    host = b"Host: " + endpoint.host
    auth = b"Authorization: Bearer " + endpoint.token.encode()
    head = b"\r\n".join([line, host, auth, b"Content-Type: application/json", *headers, b"Connection: close"])
    data = head + b"\r\n\r\n" + body
    attack(endpoint, data, reset_ok=len(data) > 65_536)


@FUZZ
@given(junk=st.binary(min_size=1, max_size=512))
@example(junk=b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")  # a TLS ClientHello
def test_random_bytes_as_a_request(endpoint: Endpoint, junk: bytes) -> None:
    # Ended by a blank line, so it is a complete (if meaningless) request to the server;
    # only whitespace before it is no request at all, and the server just closes.
    while b"\r\n\r\n" in junk:
        junk = junk.replace(b"\r\n\r\n", b"\r\n")
    junk = junk.lstrip() or b"X"
    attack(endpoint, junk + b"\r\n\r\n")


# -- gzip --------------------------------------------------------------------------------------

_BOMB = gzip.compress(b"\0" * 50_000_000, 9)  # ~50 KB that inflates to 50 MB
_JUNK_REPORTS = gzip.compress(b'{"reports": [{"event": "no required field"}]}')


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-15)
    return packer.compress(data) + packer.flush()


_GZIP_BODIES = st.one_of(
    st.sampled_from(
        [_BOMB, _BOMB[: len(_BOMB) // 2], _JUNK_REPORTS + b"trailing", _JUNK_REPORTS + _JUNK_REPORTS,
         _JUNK_REPORTS[:-4], _JUNK_REPORTS[:10], b"\x1f\x8b", b"\x1f\x8b\x08\x00" + b"\x00" * 6, _deflate(GOOD_REPORT),
         zlib.compress(GOOD_REPORT), gzip.compress(gzip.compress(GOOD_REPORT)), gzip.compress(b"\xff\xfe"),
         gzip.compress(b"[" * 100_000), gzip.compress(b" " * (MAX_BODY_BYTES + 1))]
    ),
    st.binary(max_size=256).map(lambda b: b"\x1f\x8b\x08" + b),
    st.tuples(st.binary(max_size=64), st.integers(0, 200)).map(lambda t: gzip.compress(t[0])[: t[1]] + t[0]),
)  # fmt: skip
_ENCODINGS = st.sampled_from([b"gzip", b"GZIP", b" gzip ", b"x-gzip", b"gzip, gzip", b"deflate", b"br", b"identity"])


@FUZZ
@given(body=_GZIP_BODIES, encoding=_ENCODINGS)
@example(body=_BOMB, encoding=b"gzip")
def test_gzip_junk(endpoint: Endpoint, body: bytes, encoding: bytes) -> None:
    answer = attack(endpoint, endpoint.reports(body, (b"Content-Encoding", encoding)))
    if body is _BOMB and encoding == b"gzip":
        assert answer is not None and answer.status == 413


# -- huge and deep ------------------------------------------------------------------------------


def _over_the_limit() -> bytes:
    report = b'{"event": "' + b"x" * 4000 + b'"}'
    count = MAX_BODY_BYTES // len(report) + 1
    return b'{"reports": [' + b",".join([report] * count) + b"]}"


HUGE: list[tuple[str, bytes | None, int]] = [
    ("a body over 1 MiB", _over_the_limit(), 413),
    ("a body of 50 MB announced", None, 413),
    ("JSON nested 100k deep", b"[" * 100_000 + b"]" * 100_000, 400),
    ("an object nested 100k deep", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, 400),
    ("10,001 reports", b"[" + b",".join([b'{"event": "x"}'] * 10_001) + b"]", 413),
    ("an integer of 5000 digits", b'{"n": ' + b"9" * 5000 + b"}", 400),
    ("NaN", b'{"n": NaN}', 400),
    ("invalid UTF-8", b'{"event": "\xff\xfe"}', 400),
    ("a UTF-8 encoded surrogate", b'{"event": "\xed\xa0\x80"}', 400),
    ("a lone surrogate escape", b'{"event": "\\ud800"}', 422),
    ("a string of 900k characters", b'{"event": "' + b"x" * 900_000 + b'"}', 422),
    ("a key of 900k characters", b'{"' + b"k" * 900_000 + b'": 1}', 422),
    ("50k undeclared keys", b"{" + b",".join(b'"k%d": 1' % i for i in range(50_000)) + b"}", 422),
    ("a repeated key", b'{"event": "a", "event": "b"}', 400),
]


@pytest.mark.parametrize(("what", "body", "status"), HUGE, ids=[what for what, _, _ in HUGE])
def test_huge_and_deep_bodies(endpoint: Endpoint, what: str, body: bytes | None, status: int) -> None:
    if body is None:
        data = endpoint.reports(b"").replace(b"Content-Length: 0", b"Content-Length: 50000000")
    else:
        data = endpoint.reports(body)
    attack(endpoint, data, status)


@pytest.mark.parametrize(
    ("what", "headers"),
    [
        ("one header of 70 KB", [(b"X-Big", b"a" * 70_000)]),
        ("2000 headers", [(b"X-H%d" % i, b"v" * 40) for i in range(2000)]),
        ("an Authorization of 60 KB", [(b"Authorization", b"Bearer " + b"t" * 60_000)]),
    ],
)
def test_oversized_headers(endpoint: Endpoint, what: str, headers: list[tuple[bytes, bytes]]) -> None:
    data = request(b"POST", b"/v1/reports", GOOD_REPORT, [(b"Content-Type", b"application/json"), *headers],
                   host=endpoint.host)  # fmt: skip
    # Over the limit the server answers 431 and closes at once; the rest of what we send
    # then meets a reset, which may swallow the answer on our side.
    answer = attack(endpoint, data, reset_ok=True)
    assert answer is None or answer.status in (401, 431), answer


@pytest.mark.parametrize(
    ("what", "length", "body", "status"),
    [
        ("no body", b"0", b"", 400),
        ("a body over the limit announced", b"50000000", b"", 413),
        ("a junk body", b"5", b"junk!", 400),
    ],
)
def test_expect_continue_is_answered(endpoint: Endpoint, what: str, length: bytes, body: bytes, status: int) -> None:
    # A request that is complete, or refused on its headers alone, gets its final answer
    # at once rather than a 100 Continue and then silence.
    headers = [*endpoint.json_headers(endpoint.token), (b"Expect", b"100-continue"), (b"Content-Length", length)]
    attack(endpoint, request(b"POST", b"/v1/reports", body, headers, host=endpoint.host, length=False), status)
