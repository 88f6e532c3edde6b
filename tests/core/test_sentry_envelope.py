"""Sentry's wire in (tray_app/core/rules/sentry_envelope.py): bodies by Content-Encoding, the
envelope format read strictly, which items are taken and why the others are refused, and the
DSN's key; against a client nobody here wrote (stock sentry-sdk, its brotli and gzip bodies,
its own envelope serializer) and against junk (hypothesis)."""

from __future__ import annotations

import gzip
import json
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import brotli  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentry_sdk.envelope import Envelope as SdkEnvelope
from sentry_sdk.envelope import Item as SdkItem
from sentry_sdk.envelope import PayloadRef

from tests.support.sentry_capture import Captured, planted_app, run_sentry_script
from tray_app.core.errors import AuthError, MalformedError, TooLargeError, TrayError
from tray_app.core.rules import sentry_envelope as se
from tray_app.core.rules.intake import MAX_BODY_BYTES

EVENT_ID = "9ec79c33ec9942ab8353589fcb2e04dc"
EVENT = {"event_id": EVENT_ID, "level": "error", "exception": {"values": [{"type": "ValueError"}]}}


def envelope(*items: tuple[Mapping[str, object], bytes], header: Mapping[str, object] | None = None) -> bytes:
    lines = [json.dumps(header if header is not None else {"event_id": EVENT_ID}).encode()]
    for item_header, payload in items:
        lines += [json.dumps(item_header).encode(), payload]
    return b"\n".join(lines) + b"\n"


def event_item(event: object = EVENT) -> tuple[Mapping[str, object], bytes]:
    payload = json.dumps(event).encode()
    return {"type": "event", "length": len(payload), "content_type": "application/json"}, payload


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def _error_of(action: Callable[[], object]) -> TrayError | None:
    """The typed error ``action`` raised, or None; any other exception goes on up (and fails)."""
    try:
        action()
    except TrayError as exc:
        return exc
    return None


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,  # HTTP's deflate: the zlib format
    "br": brotli.compress,
}

# ------------------------------------------------------------------------------------------------
# The stock SDK, pointed at a capture server by SENTRY_DSN only


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return planted_app(tmp_path_factory.mktemp("sentry-app"))


@pytest.fixture(scope="module")
def sent_br(app: Path) -> Captured:
    return run_sentry_script(app, args=["crash"]).requests[0]


@pytest.fixture(scope="module")
def sent_gzip(app: Path) -> Captured:
    return run_sentry_script(app, args=["crash"], brotli=False).requests[0]


def test_stock_sdk_sends_brotli_when_it_can_and_we_read_it(sent_br: Captured) -> None:
    assert sent_br.path == "/api/1/envelope/"
    assert sent_br.encoding == "br"
    env = se.parse_envelope(se.decode_body(sent_br.body, sent_br.encoding))
    assert [item.type for item in env.items] == ["event"]
    sorted_items = se.sort_items(env)
    assert sorted_items.event is not None and sorted_items.refused == ()
    assert sorted_items.event["event_id"] == env.header.event_id
    assert sorted_items.event["exception"]["values"][-1]["type"] == "ExportError"


def test_stock_sdk_falls_back_to_gzip_without_brotli_and_we_read_it(sent_gzip: Captured) -> None:
    assert sent_gzip.encoding == "gzip"
    env = se.parse_envelope(se.decode_body(sent_gzip.body, sent_gzip.encoding))
    event = se.sort_items(env).event
    assert event is not None and event["exception"]["values"][-1]["type"] == "ExportError"
    # The length the SDK gave is honoured: the event parses whole, not cut at a newline.
    assert env.items[0].length == len(env.items[0].payload)


def test_stock_sdk_uncompressed(app: Path) -> None:
    sent = run_sentry_script(app, args=["plain"]).requests[0]
    assert sent.encoding == "identity"
    assert se.sort_items(se.parse_envelope(se.decode_body(sent.body, None))).event is not None


@pytest.mark.parametrize("encoding", ["deflate", "raw-deflate"])
def test_what_the_sdk_sent_reads_the_same_deflated(sent_gzip: Captured, encoding: str) -> None:
    plain = se.decode_body(sent_gzip.body, "gzip")
    body = zlib.compress(plain) if encoding == "deflate" else raw_deflate(plain)
    assert se.decode_body(body, "deflate") == plain


def test_the_key_is_the_dsn_key(sent_br: Captured) -> None:
    assert sent_br.headers["x-sentry-auth"].startswith("Sentry sentry_key=tok123,")
    assert se.sentry_key(sent_br.headers.get("x-sentry-auth"), sent_br.query) == "tok123"


def test_an_attachment_from_the_sdk_is_refused_and_the_event_kept(app: Path) -> None:
    sent = run_sentry_script(app, args=["attach"]).requests[0]
    sorted_items = se.sort_items(se.parse_envelope(se.decode_body(sent.body, sent.encoding)))
    assert sorted_items.event is not None
    assert [(r.index, r.type) for r in sorted_items.refused] == [(1, "attachment")]
    assert "nobody can review" in sorted_items.refused[0].reason


def test_sessions_from_the_sdk_are_taken(app: Path) -> None:
    sent = run_sentry_script(app, args=["session"], expect=2, brotli=False).requests
    sessions = [s for r in sent for s in se.sort_items(se.parse_envelope(se.decode_body(r.body, r.encoding))).sessions]
    assert [kind for kind, _ in sessions] == ["session"]
    assert sessions[0][1]["status"] == "exited"


def test_a_minidump_serialized_by_the_sdk_is_refused_as_a_memory_dump() -> None:
    sdk_envelope = SdkEnvelope(headers={"event_id": EVENT_ID})
    event: Any = dict(EVENT)
    sdk_envelope.add_event(event)
    dump = b"MDMP\x93\xa7\n\x00\x00 memory\n"
    headers = {"attachment_type": se.MINIDUMP, "filename": "upload_file_minidump"}
    sdk_envelope.add_item(SdkItem(payload=PayloadRef(bytes=dump), type="attachment", headers=headers))
    env = se.parse_envelope(sdk_envelope.serialize())
    assert env.items[1].payload == dump  # a payload with newlines, read by its length
    sorted_items = se.sort_items(env)
    assert sorted_items.event is not None
    [refused] = sorted_items.refused
    assert refused.type == "attachment"
    assert refused.reason.startswith("nobody can review a memory dump")


# ------------------------------------------------------------------------------------------------
# Bodies by Content-Encoding


@given(st.binary(max_size=4096), st.sampled_from(sorted(COMPRESSORS)))
@settings(max_examples=60, deadline=None)
def test_every_encoding_round_trips(data: bytes, encoding: str) -> None:
    assert se.decode_body(COMPRESSORS[encoding](data), encoding) == data
    assert se.decode_body(data, "identity") == data
    if encoding == "deflate":
        assert se.decode_body(raw_deflate(data), "deflate") == data


@pytest.mark.parametrize("encoding", [None, "", "identity", " GZIP ", "x-gzip", "Br"])
def test_encoding_names(encoding: str | None) -> None:
    data = b'{"a": 1}'
    name = (encoding or "identity").strip().lower().replace("x-", "")
    body = COMPRESSORS[name](data) if name in COMPRESSORS else data
    assert se.decode_body(body, encoding) == data


@pytest.mark.parametrize("encoding", ["compress", "zstd", "gzip, br", "x" * 200])
def test_other_encodings_are_refused_as_unsupported(encoding: str) -> None:
    with pytest.raises(se.UnsupportedEncoding, match="plain or as gzip, deflate or br"):
        se.decode_body(b"data", encoding)


@pytest.mark.parametrize("encoding", sorted(COMPRESSORS))
def test_a_bomb_is_refused_without_inflating_it(encoding: str) -> None:
    bomb = COMPRESSORS[encoding](b"\0" * (64 * MAX_BODY_BYTES))  # 64 MiB of zeros, a few KiB sent
    assert len(bomb) < MAX_BODY_BYTES
    tracemalloc.start()
    try:
        with pytest.raises(TooLargeError, match="once decompressed"):
            se.decode_body(bomb, encoding)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_BODY_BYTES  # inflated whole, it would take 64 MiB


@pytest.mark.parametrize("encoding", sorted(COMPRESSORS))
def test_the_limit_is_exact(encoding: str) -> None:
    at_limit = b"a" * MAX_BODY_BYTES
    assert se.decode_body(COMPRESSORS[encoding](at_limit), encoding) == at_limit
    with pytest.raises(TooLargeError):
        se.decode_body(COMPRESSORS[encoding](at_limit + b"a"), encoding)


def test_a_plain_body_over_the_limit_is_refused() -> None:
    with pytest.raises(TooLargeError, match="at most 1048576"):
        se.decode_body(b"a" * (MAX_BODY_BYTES + 1), None)


@pytest.mark.parametrize("encoding", sorted(COMPRESSORS))
def test_a_cut_stream_is_malformed(encoding: str) -> None:
    whole = COMPRESSORS[encoding](b"some envelope " * 500)
    with pytest.raises(MalformedError, match=f"The {encoding} body"):
        se.decode_body(whole[: len(whole) // 2], encoding)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_data_after_the_stream_is_malformed(encoding: str) -> None:
    with pytest.raises(MalformedError, match="after its end"):
        se.decode_body(COMPRESSORS[encoding](b"x") + b"junk", encoding)


@given(st.binary(min_size=1, max_size=512), st.sampled_from(sorted(COMPRESSORS)))
@settings(max_examples=150, deadline=None)
def test_random_bytes_as_a_compressed_body_give_a_typed_error(data: bytes, encoding: str) -> None:
    error = _error_of(lambda: se.decode_body(data, encoding))
    assert error is None or (isinstance(error, MalformedError | TooLargeError) and error.message.startswith("The "))


def test_br_without_the_module_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "brotli", None)  # what "import brotli" finds when it is not installed
    with pytest.raises(se.UnsupportedEncoding, match="brotli module is missing"):
        se.decode_body(brotli.compress(b"x"), "br")


# ------------------------------------------------------------------------------------------------
# The envelope format


def test_length_and_newline_delimited_items() -> None:
    session = b'{"sid":"a","status":"exited"}'
    body = envelope(event_item(), ({"type": "session"}, session), header={"event_id": EVENT_ID, "sent_at": "x"})
    env = se.parse_envelope(body)
    assert env.header == se.EnvelopeHeader(EVENT_ID, None, "x", {})
    assert [(i.index, i.type, i.length) for i in env.items] == [
        (0, "event", len(event_item()[1])),
        (1, "session", None),
    ]
    assert env.items[1].payload == session
    assert env.items[0].content_type == "application/json"


def test_the_last_newline_is_optional_and_crlf_belongs_to_the_payload() -> None:
    body = envelope(({"type": "session"}, b'{"status":"ok"}\r')).rstrip(b"\n")
    [item] = se.parse_envelope(body).items
    assert item.payload == b'{"status":"ok"}\r'


def test_a_payload_with_newlines_needs_its_length() -> None:
    payload = b'{"event_id":"' + EVENT_ID.encode() + b'",\n"level":"error"}'
    good = envelope(({"type": "event", "length": len(payload)}, payload))
    assert se.sort_items(se.parse_envelope(good)).event == {"event_id": EVENT_ID, "level": "error"}
    bad = envelope(({"type": "event"}, payload))
    with pytest.raises(MalformedError):
        se.sort_items(se.parse_envelope(bad))


def test_unknown_headers_are_kept_apart() -> None:
    body = envelope(
        ({"type": "event", "length": 2, "x-custom": 1}, b"{}"), header={"event_id": EVENT_ID, "trace": {"a": 1}}
    )
    env = se.parse_envelope(body)
    assert env.header.other == {"trace": {"a": 1}}
    assert env.items[0].other == {"x-custom": 1}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "The envelope is empty"),
        (b'{"event_id":"' + EVENT_ID.encode() + b'"}\n', "no items"),
        (b"not json\n{}\n{}", "The envelope header is not valid JSON"),
        (b"[1]\n{}\n{}", "must be a JSON object, not a list"),
        (b'{"event_id":"xyz"}\n{"type":"event"}\n{}', "32 hexadecimal digits"),
        (b'{"dsn":5}\n{"type":"event"}\n{}', "dsn must be a string"),
        (b'{"sent_at":1,"sent_at":2}\n{"type":"event"}\n{}', "appears twice"),
        (b"{}\n\n{}", "item 0 is an empty line"),
        (b'{}\n{"length":2}\n{}', 'no "type"'),
        (b'{}\n{"type":""}\n{}', 'no "type"'),
        (b'{}\n{"type":"event","length":-1}\n{}', "whole number of bytes"),
        (b'{}\n{"type":"event","length":true}\n{}', "whole number of bytes"),
        (b'{}\n{"type":"event","length":"2"}\n{}', "whole number of bytes"),
        (b'{}\n{"type":"event","length":50}\n{}', "only 2 follow"),
        (b'{}\n{"type":"event","length":1}\n{}', "not followed by a newline"),
        (b'{}\n{"type":"event","length":2}', "no payload"),
        (b'{}\n{"type":"attachment","filename":7}\n', "filename must be a string"),
        (b"\xff\xfe\n{}\n{}", "not UTF-8"),
        (b'{"a":NaN}\n{"type":"event"}\n{}', "NaN is not valid JSON"),
    ],
)
def test_a_broken_envelope_is_malformed_and_says_where(body: bytes, words: str) -> None:
    with pytest.raises(MalformedError) as caught:
        se.parse_envelope(body)
    assert words.lower() in caught.value.message.lower()


def test_too_many_items() -> None:
    items = [({"type": "session"}, b"{}")] * (se.MAX_ITEMS + 1)
    with pytest.raises(TooLargeError, match="more than 100 items"):
        se.parse_envelope(envelope(*items))
    assert len(se.parse_envelope(envelope(*items[:-1])).items) == se.MAX_ITEMS


def test_a_huge_item_count_is_refused_quickly() -> None:
    body = b"{}\n" + b'{"type":"x"}\n\n' * 70_000  # about 1 MiB of empty items
    started = time.perf_counter()
    with pytest.raises(TooLargeError):
        se.parse_envelope(body)
    assert time.perf_counter() - started < 1


def test_a_header_line_over_its_limit() -> None:
    header = {"event_id": EVENT_ID, "pad": "x" * se.MAX_HEADER_BYTES}
    with pytest.raises(TooLargeError, match="a header line holds at most"):
        se.parse_envelope(envelope(event_item(), header=header))


@pytest.mark.parametrize("depth", [se.MAX_DEPTH + 1, 100_000])
def test_deep_json_is_refused(depth: int) -> None:
    payload = b"[" * depth + b"]" * depth
    body = envelope(({"type": "event", "length": len(payload) + 8}, b'{"a": ' + payload + b"}"))
    with pytest.raises(MalformedError, match="nested too deeply"):
        se.sort_items(se.parse_envelope(body))


def test_json_at_the_depth_limit_is_read() -> None:
    depth = se.MAX_DEPTH - 1
    payload = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    assert se.sort_items(se.parse_envelope(envelope(({"type": "event"}, payload)))).event is not None


# ------------------------------------------------------------------------------------------------
# Which items are taken


REFUSED_TYPES = [
    "attachment",
    "transaction",
    "profile",
    "replay_event",
    "replay_recording",
    "client_report",
    "check_in",
    "statsd",
    "user_report",
    "log",
    "span",
    "some_future_type",
]


@pytest.mark.parametrize("kind", REFUSED_TYPES)
def test_each_refused_type_has_its_reason(kind: str) -> None:
    env = se.parse_envelope(envelope(event_item(), ({"type": kind, "length": 3}, b"a\nb")))
    sorted_items = se.sort_items(env)
    assert sorted_items.event is not None
    [refused] = sorted_items.refused
    assert (refused.index, refused.type) == (1, kind)
    assert refused.reason == se.REFUSALS.get(kind, se._UNKNOWN)
    assert len(refused.reason) > 30 and refused.reason[0].islower()


def test_reasons_differ_where_they_should() -> None:
    attachment = se.EnvelopeItem(0, "attachment", b"", None)
    minidump = se.EnvelopeItem(0, "attachment", b"", None, attachment_type=se.MINIDUMP)
    assert se.refusal(minidump) is not None and se.refusal(minidump) != se.refusal(attachment)
    assert "memory dump" in str(se.refusal(minidump))
    for kind in se.TAKEN_TYPES:
        assert se.refusal(se.EnvelopeItem(0, kind, b"", None)) is None


def test_a_refused_type_is_shown_cut() -> None:
    env = se.parse_envelope(envelope(event_item(), ({"type": "t" * 500}, b"")))
    assert se.sort_items(env).refused[0].type == "t" * 40 + "…"


def test_one_event_per_envelope() -> None:
    with pytest.raises(MalformedError, match="more than one event"):
        se.sort_items(se.parse_envelope(envelope(event_item(), event_item())))


def test_the_event_id_must_agree_with_the_header() -> None:
    other = dict(EVENT, event_id="0" * 32)
    with pytest.raises(MalformedError, match="differs from the envelope header"):
        se.sort_items(se.parse_envelope(envelope(event_item(other))))


def test_the_event_id_is_normalised_and_filled_in() -> None:
    dashed = "9EC79C33-EC99-42AB-8353-589FCB2E04DC"
    event = se.sort_items(se.parse_envelope(envelope(event_item(dict(EVENT, event_id=dashed))))).event
    assert event is not None and event["event_id"] == EVENT_ID
    bare = {"level": "error"}
    event = se.sort_items(se.parse_envelope(envelope(event_item(bare)))).event
    assert event is not None and event["event_id"] == EVENT_ID


@pytest.mark.parametrize("payload", [b"[]", b"not json", b'"text"', b""])
def test_an_event_payload_must_be_an_object(payload: bytes) -> None:
    with pytest.raises(MalformedError, match=r"The event \(item 0\)"):
        se.sort_items(se.parse_envelope(envelope(({"type": "event", "length": len(payload)}, payload))))


def test_the_legacy_store_body() -> None:
    assert se.parse_store_body(json.dumps(EVENT).encode()) == EVENT
    for body, words in [(b"", "empty"), (b"[]", "must be a JSON object"), (b"eJzLSM3JyQcABiwCFQ==", "not valid JSON")]:
        with pytest.raises(MalformedError, match=words):
            se.parse_store_body(body)


# ------------------------------------------------------------------------------------------------
# The key


@pytest.mark.parametrize(
    ("header", "query", "dsn"),
    [
        ("Sentry sentry_key=tok123, sentry_version=7, sentry_client=sentry.python/2.75.0", "", None),
        ("sentry sentry_version=7,sentry_key=tok123", "", None),
        (None, "sentry_key=tok123&sentry_version=7&sentry_client=sentry.javascript.browser%2F10.0.0", None),
        (None, "", "https://tok123@127.0.0.1:4318/1"),
        ("Sentry sentry_key=tok123", "sentry_key=tok123", "http://tok123@127.0.0.1/1"),
    ],
)
def test_the_key_from_each_place(header: str | None, query: str, dsn: str | None) -> None:
    assert se.sentry_key(header, query, dsn) == "tok123"


@pytest.mark.parametrize(
    ("header", "query", "dsn", "words"),
    [
        (None, "", None, "No Sentry key"),
        ("", "sentry_version=7", None, "No Sentry key"),
        ("Bearer tok123", "", None, "must start with 'Sentry '"),
        ("Sentry sentry_version=7", "", None, "no sentry_key"),
        ("Sentry sentry_key=", "", None, "no sentry_key"),
        ("Sentry sentry_key=a, sentry_key=b", "", None, "twice"),
        ("Sentry sentry_key=a", "sentry_key=b", None, "two different"),
        (None, "sentry_key=a&sentry_key=b", None, "given twice"),
        (None, "sentry_key=", None, "empty"),
        (None, "", "http://127.0.0.1/1", "holds no key"),
        (None, "sentry_key=a", "http://b@127.0.0.1/1", "two different"),
    ],
)
def test_a_missing_or_conflicting_key(header: str | None, query: str, dsn: str | None, words: str) -> None:
    with pytest.raises(AuthError, match=words):
        se.sentry_key(header, query, dsn)


# ------------------------------------------------------------------------------------------------
# Junk: a clear typed error, never a traceback


def _read_all(body: bytes, encoding: str | None = None) -> None:
    env = se.parse_envelope(se.decode_body(body, encoding))
    se.sort_items(env)


def _is_clear(exc: TrayError) -> bool:
    return isinstance(exc, MalformedError | TooLargeError) and exc.message[:1].isupper() and exc.message.endswith(".")


@given(st.binary(max_size=2048))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes(data: bytes) -> None:
    error = _error_of(lambda: _read_all(data))
    assert error is None or _is_clear(error), error


def _mutations() -> st.SearchStrategy[bytes]:
    good = envelope(
        event_item(),
        ({"type": "session"}, b'{"status":"exited"}'),
        ({"type": "attachment", "length": 4}, b"a\nbc"),
    )
    cut = st.integers(0, len(good)).map(lambda n: good[:n])
    flipped = st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)).map(
        lambda pair: good[: pair[0]] + bytes([pair[1]]) + good[pair[0] + 1 :]
    )
    spliced = st.tuples(st.integers(0, len(good)), st.binary(max_size=64)).map(
        lambda pair: good[: pair[0]] + pair[1] + good[pair[0] :]
    )
    lengths = st.integers(-5, 10**12).map(lambda n: good.replace(b'"length": 4', b'"length": ' + str(n).encode()))
    return st.one_of(cut, flipped, spliced, lengths)


@given(_mutations(), st.sampled_from([None, *sorted(COMPRESSORS)]))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_cut_flipped_and_spliced_envelopes(body: bytes, encoding: str | None) -> None:
    sent = COMPRESSORS[encoding](body) if encoding else body
    error = _error_of(lambda: _read_all(sent, encoding))
    assert error is None or _is_clear(error), error


def test_mutations_do_reach_errors() -> None:
    # The strategies above are not vacuous: cutting the good envelope anywhere inside an item breaks it.
    good = envelope(event_item(), ({"type": "attachment", "length": 4}, b"a\nbc"))
    _read_all(good)
    failures = 0
    for n in range(1, len(good) - 1):
        try:
            _read_all(good[:n])
        except (MalformedError, TooLargeError):
            failures += 1
    assert failures > len(good) // 2
