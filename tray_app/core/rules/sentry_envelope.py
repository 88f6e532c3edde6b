"""Sentry's wire, as a stock Sentry SDK sends it to the tray: bodies, envelopes, keys.

Four steps, each pure, each refusing what it cannot read with a typed error that says
what is wrong and what to do (docs/sentry.md):

1. :func:`decode_body`: the request body by its ``Content-Encoding`` (identity, gzip,
   deflate with or without its zlib wrapper, br), at most :data:`MAX_BODY_BYTES` once
   decompressed, the limit counted while decompressing (a bomb is never inflated whole).
2. :func:`parse_envelope`: the envelope format, strictly (``envelopes.mdx``): a header line
   of compact JSON, then items, each a JSON header line (``type``, optional ``length``,
   ``content_type``...) and a payload, ``length`` bytes long or up to the next newline.
   :func:`parse_store_body` reads the legacy ``/store/`` body (one event as JSON).
3. :func:`sort_items`: which items are taken (``event``; ``session`` and ``sessions``, as
   aggregates) and which are refused, each with a reason in words (:data:`REFUSALS`).
4. :func:`sentry_key`: the DSN's key, from ``X-Sentry-Auth``, the ``sentry_key`` query
   parameter or the envelope's ``dsn`` header: for the tray, the app's token.

What an event holds, and what of it is kept, is :mod:`.crash_report`.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from urllib.parse import parse_qs, urlsplit

from ..errors import AuthError, MalformedError, TooLargeError
from .intake import MAX_BODY_BYTES, unique_keys

MAX_ITEMS = 100  # Sentry's own limit on sessions per envelope; no SDK sends more items
MAX_HEADER_BYTES = 64 * 1024  # one header line, the envelope's or an item's
MAX_DEPTH = 64  # nesting of any JSON value; sentry-python cuts its values at 10 levels
ENCODINGS: tuple[str, ...] = ("identity", "gzip", "deflate", "br")
TAKEN_TYPES: frozenset[str] = frozenset({"event", "session", "sessions"})
_CHUNK = 64 * 1024
_EVENT_ID = re.compile(r"^[0-9a-fA-F]{32}\Z")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_SHOWN = 40

MINIDUMP = "event.minidump"
_NO_DUMP = (
    "nobody can review a memory dump: it holds whatever was in the crashed program's memory "
    "(documents, passwords, keys), and a person cannot read it to decide"
)
_NO_ATTACHMENT = "an attachment is a file of any content, which nobody can review field by field before it is sent"
# Why each item type that is not taken is refused, in words a person reads in the history.
REFUSALS: Mapping[str, str] = {
    "attachment": _NO_ATTACHMENT,
    "transaction": "performance traces (transactions) are not crash reports; declare them through OTLP instead",
    "span": "performance spans are not crash reports; declare them through OTLP instead",
    "profile": "a profile samples every function the program ran, far more than a crash; it cannot be reviewed",
    "profile_chunk": "a profile samples every function the program ran, far more than a crash; it cannot be reviewed",
    "replay_event": "a session replay records the screen and what the person did; nobody should send that unseen",
    "replay_recording": "a session replay records the screen and what the person did; nobody should send that unseen",
    "replay_video": "a session replay records the screen and what the person did; nobody should send that unseen",
    "client_report": "a client report only counts what the SDK dropped; the tray keeps its own count",
    "check_in": "cron check-ins are monitoring, not crash reports, and are not part of the crash schema",
    "statsd": "metrics are sent through OTLP, where the manifest declares each one",
    "metric_buckets": "metrics are sent through OTLP, where the manifest declares each one",
    "trace_metric": "metrics are sent through OTLP, where the manifest declares each one",
    "log": "logs are sent through OTLP, where the manifest declares each field",
    "otel_log": "logs are sent through OTLP, where the manifest declares each field",
    "user_report": "user feedback is free text with a name and an e-mail address; it is not part of the crash schema",
    "feedback": "user feedback is free text with a name and an e-mail address; it is not part of the crash schema",
}
_UNKNOWN = "the tray does not know this kind of item, so it cannot show it to a person; only crash events are taken"


class UnsupportedEncoding(MalformedError):
    """A ``Content-Encoding`` the tray does not decode (HTTP 415), or br without the module."""

    title = "Unsupported encoding"


@dataclass(frozen=True)
class EnvelopeHeader:
    event_id: str | None  # 32 lowercase hex digits (a UUID's dashes removed)
    dsn: str | None
    sent_at: str | None
    other: Mapping[str, Any] = field(default_factory=dict)  # sdk, trace, ...: read, never kept


@dataclass(frozen=True)
class EnvelopeItem:
    index: int  # its place in the envelope, from 0
    type: str
    payload: bytes
    length: int | None  # as its header gave it (None: newline-delimited)
    content_type: str | None = None
    filename: str | None = None
    attachment_type: str | None = None
    other: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Envelope:
    header: EnvelopeHeader
    items: tuple[EnvelopeItem, ...]


@dataclass(frozen=True)
class RefusedItem:
    index: int
    type: str  # as sent, cut to a readable length
    reason: str


@dataclass(frozen=True)
class SortedItems:
    """The items of an envelope: its one event (or none), its session updates and
    aggregates (each as its item type and payload object), and what was refused and why."""

    event: dict[str, Any] | None
    sessions: tuple[tuple[str, dict[str, Any]], ...]
    refused: tuple[RefusedItem, ...]


# -- 1. the body --------------------------------------------------------------------------


def decode_body(body: bytes, content_encoding: str | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """``body`` decompressed by its ``Content-Encoding`` (``None`` or empty: identity), at most
    ``limit`` bytes before and after. A stacked encoding ("gzip, br") is refused."""
    encoding = (content_encoding or "identity").strip().lower() or "identity"
    if encoding == "x-gzip":
        encoding = "gzip"
    if len(body) > limit:
        raise TooLargeError(f"The body is {len(body)} bytes; at most {limit} are accepted. Send less at a time.")
    if encoding == "identity":
        return body
    if encoding == "gzip":
        return _inflate(body, 31, "gzip", limit)
    if encoding == "deflate":
        # HTTP's deflate is the zlib format, but some clients send raw deflate: the zlib
        # header (a CMF byte of method 8 and a check that is a multiple of 31) tells them apart.
        wrapped = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
        return _inflate(body, 15 if wrapped else -15, "deflate", limit)
    if encoding == "br":
        return _unbrotli(body, limit)
    shown = encoding if len(encoding) <= _SHOWN else encoding[:_SHOWN] + "…"
    raise UnsupportedEncoding(
        f"Content-Encoding {shown!r} is not accepted; send the body plain or as gzip, deflate or br."
    )


def _too_large(limit: int) -> TooLargeError:
    return TooLargeError(f"The body is over {limit} bytes once decompressed; send less at a time.")


def _inflate(data: bytes, wbits: int, name: str, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise MalformedError(f"The {name} body is damaged ({exc}); send it again, or send it plain.") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise _too_large(limit)
    if not inflater.eof:
        raise MalformedError(f"The {name} body ends too early; send the whole compressed stream.")
    if inflater.unused_data:
        raise MalformedError(f"The {name} body has data after its end; send one compressed stream.")
    return out


class _Decompressor(Protocol):
    def process(self, data: bytes, output_buffer_limit: int = ...) -> bytes: ...
    def can_accept_more_data(self) -> bool: ...
    def is_finished(self) -> bool: ...


def _unbrotli(data: bytes, limit: int) -> bytes:
    try:
        # Imported at the first br body only; a plain import, so PyInstaller bundles it.
        import brotli  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise UnsupportedEncoding(
            "This Telemetry Tray cannot read br (brotli) bodies: the brotli module is missing. "
            "Reinstall Telemetry Tray with its dependencies, or have the SDK send gzip."
        ) from None
    error = cast(type[Exception], brotli.error)
    decompressor = cast(_Decompressor, brotli.Decompressor())
    parts: list[bytes] = []
    total = 0
    try:
        # Each call returns little more than _CHUNK bytes (the output buffer stops growing
        # there); the rest waits in the decompressor until asked for with empty input. An
        # empty answer before the end means the input ran out.
        part = decompressor.process(data, output_buffer_limit=_CHUNK)
        while True:
            total += len(part)
            if total > limit:
                raise _too_large(limit)
            parts.append(part)
            if decompressor.is_finished() or not part:
                break
            part = decompressor.process(b"", output_buffer_limit=_CHUNK)
    except error as exc:
        raise MalformedError(f"The br body is damaged ({exc}); send it again, or send it as gzip.") from None
    if not decompressor.is_finished():
        raise MalformedError("The br body ends too early; send the whole compressed stream.")
    return b"".join(parts)


# -- 2. the envelope ----------------------------------------------------------------------


def parse_envelope(body: bytes) -> Envelope:
    """The envelope in ``body`` (already decompressed), read strictly: every header line is a
    JSON object, every ``length`` is honoured exactly, at most :data:`MAX_ITEMS` items."""
    if not body:
        raise MalformedError("The envelope is empty; send a header line and at least one item.")
    if len(body) > MAX_BODY_BYTES:
        raise TooLargeError(f"The envelope is {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted.")
    end = body.find(b"\n")
    line = body if end == -1 else body[:end]
    header = _envelope_header(_json_line(line, "the envelope header"))
    position = len(body) if end == -1 else end + 1
    items: list[EnvelopeItem] = []
    while position < len(body):
        if len(items) == MAX_ITEMS:
            raise TooLargeError(
                f"The envelope holds more than {MAX_ITEMS} items; send fewer at a time (one event per envelope)."
            )
        index = len(items)
        end = body.find(b"\n", position)
        if end == -1:
            raise MalformedError(f"Item {index} has a header but no payload: the envelope was cut. Send it whole.")
        item_header = _json_line(body[position:end], f"the header of item {index}")
        position = end + 1
        kind, length = _item_type_and_length(item_header, index)
        if length is not None:
            if length > len(body) - position:
                raise MalformedError(
                    f"Item {index} says its payload is {length} bytes, but only {len(body) - position} follow: "
                    "the envelope was cut or the length is wrong. Send it whole, with the payload's exact length."
                )
            payload = body[position : position + length]
            position += length
            if position < len(body):
                if body[position : position + 1] != b"\n":
                    raise MalformedError(
                        f"Item {index}'s payload of {length} bytes is not followed by a newline: "
                        "its length is wrong. Give the payload's exact length in bytes."
                    )
                position += 1
        else:
            end = body.find(b"\n", position)
            end = len(body) if end == -1 else end
            payload = body[position:end]
            position = end + 1
        items.append(_item(index, kind, length, payload, item_header))
    if not items:
        raise MalformedError("The envelope has no items; send the event as an item after the header line.")
    return Envelope(header, tuple(items))


def parse_store_body(body: bytes) -> dict[str, Any]:
    """The legacy ``/api/<project>/store/`` body (already decompressed): one event object."""
    if not body:
        raise MalformedError("The body is empty; send one event as a JSON object.")
    if len(body) > MAX_BODY_BYTES:
        raise TooLargeError(f"The body is {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted.")
    return _json_object(body, "the event")


def _json_line(line: bytes, what: str) -> dict[str, Any]:
    if len(line) > MAX_HEADER_BYTES:
        raise TooLargeError(f"{_capital(what)} is {len(line)} bytes; a header line holds at most {MAX_HEADER_BYTES}.")
    if not line.strip():
        raise MalformedError(f"{_capital(what)} is an empty line; each header is one line of JSON (an object).")
    return _json_object(line, what)


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError(f"{_capital(what)} is not UTF-8 (bad byte at position {exc.start}).") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise MalformedError(
            f"{_capital(what)} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    except MalformedError as exc:
        raise MalformedError(f"{_capital(what)}: {exc.problem}") from None
    except RecursionError:
        raise MalformedError(f"{_capital(what)} is nested too deeply; at most {MAX_DEPTH} levels are read.") from None
    except ValueError as exc:  # e.g. an integer too long to convert
        raise MalformedError(f"{_capital(what)} is not valid JSON: {exc}.") from None
    if not isinstance(obj, dict):
        raise MalformedError(f"{_capital(what)} must be a JSON object, not {_json_kind(obj)}.")
    if _depth_over(obj, MAX_DEPTH):
        raise MalformedError(f"{_capital(what)} is nested too deeply; at most {MAX_DEPTH} levels are read.")
    return obj


def _no_constant(name: str) -> Any:
    raise MalformedError(f"{name} is not valid JSON; send finite numbers only.")


def _depth_over(value: object, limit: int) -> bool:
    """Whether ``value`` nests deeper than ``limit`` containers (without recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        children: list[object]
        if isinstance(current, dict):
            children = list(current.values())
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _envelope_header(obj: dict[str, Any]) -> EnvelopeHeader:
    event_id = obj.get("event_id")
    if event_id is not None:
        event_id = normal_event_id(event_id, "the envelope header's event_id")
    dsn = obj.get("dsn")
    if dsn is not None and not isinstance(dsn, str):
        raise MalformedError("The envelope header's dsn must be a string (the DSN the event is for).")
    sent_at = obj.get("sent_at")
    if sent_at is not None and not isinstance(sent_at, str):
        raise MalformedError("The envelope header's sent_at must be an RFC 3339 timestamp as a string.")
    other = {key: value for key, value in obj.items() if key not in ("event_id", "dsn", "sent_at")}
    return EnvelopeHeader(event_id, dsn, sent_at, other)


def normal_event_id(value: object, what: str = "the event_id") -> str:
    """An event id as 32 lowercase hex digits (Sentry takes a UUID with or without dashes)."""
    if isinstance(value, str) and (_EVENT_ID.match(value) or _UUID.match(value)):
        return value.replace("-", "").lower()
    raise MalformedError(f"{_capital(what)} must be 32 hexadecimal digits (a UUID), not {_shown(value)}.")


def _item_type_and_length(obj: dict[str, Any], index: int) -> tuple[str, int | None]:
    kind = obj.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedError(f'Item {index}\'s header has no "type"; every item says what it is ("event", ...).')
    length = obj.get("length")
    if length is None:
        return kind, None
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise MalformedError(f"Item {index}'s length must be a whole number of bytes, not {_shown(length)}.")
    return kind, length


def _item(index: int, kind: str, length: int | None, payload: bytes, obj: dict[str, Any]) -> EnvelopeItem:
    strings: dict[str, str | None] = {}
    for key in ("content_type", "filename", "attachment_type"):
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise MalformedError(f"Item {index}'s {key} must be a string, not {_shown(value)}.")
        strings[key] = value
    other = {key: value for key, value in obj.items() if key not in ("type", "length", *strings)}
    return EnvelopeItem(
        index,
        kind,
        payload,
        length,
        content_type=strings["content_type"],
        filename=strings["filename"],
        attachment_type=strings["attachment_type"],
        other=other,
    )


# -- 3. which items are taken -------------------------------------------------------------


def refusal(item: EnvelopeItem) -> str | None:
    """Why ``item`` is refused, in words; None when it is taken."""
    if item.type in TAKEN_TYPES:
        return None
    if item.type == "attachment" and item.attachment_type == MINIDUMP:
        return _NO_DUMP
    return REFUSALS.get(item.type, _UNKNOWN)


def sort_items(envelope: Envelope) -> SortedItems:
    """The envelope's event and sessions, read, and what is refused. An envelope holds at
    most one event (as Sentry has it), and an event's id must agree with the header's."""
    event: dict[str, Any] | None = None
    sessions: list[tuple[str, dict[str, Any]]] = []
    refused: list[RefusedItem] = []
    for item in envelope.items:
        reason = refusal(item)
        if reason is not None:
            refused.append(RefusedItem(item.index, _cut(item.type), reason))
        elif item.type == "event":
            if event is not None:
                raise MalformedError("The envelope holds more than one event; send each event in its own envelope.")
            event = _event_payload(item, envelope.header)
        else:
            sessions.append((item.type, _json_object(item.payload, f"the {item.type} item {item.index}")))
    return SortedItems(event, tuple(sessions), tuple(refused))


def _event_payload(item: EnvelopeItem, header: EnvelopeHeader) -> dict[str, Any]:
    event = _json_object(item.payload, f"the event (item {item.index})")
    if "event_id" in event:
        event_id = normal_event_id(event["event_id"], "the event's event_id")
        if header.event_id is not None and event_id != header.event_id:
            raise MalformedError("The event's event_id differs from the envelope header's; send the same id in both.")
        event["event_id"] = event_id
    elif header.event_id is not None:
        event["event_id"] = header.event_id
    return event


# -- 4. the key ---------------------------------------------------------------------------


def sentry_key(auth_header: str | None, query: str = "", envelope_dsn: str | None = None) -> str:
    """The DSN's public key the request carries: in ``X-Sentry-Auth``
    (``Sentry sentry_key=KEY, sentry_version=7, ...``), in the query's ``sentry_key``, or in
    the envelope header's ``dsn``. Two that disagree are refused, as Sentry does."""
    found: list[str] = []
    if auth_header is not None and auth_header.strip():
        found.append(_key_of_header(auth_header))
    if query:
        try:
            values = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=50).get("sentry_key")
        except ValueError:
            raise AuthError("The query string has too many parameters; send the key in X-Sentry-Auth.") from None
        if values:
            if len(set(values)) > 1 or not values[0].strip():
                raise AuthError("The query's sentry_key is empty or given twice; give the DSN's key once.")
            found.append(values[0].strip())
    if envelope_dsn is not None:
        try:
            key = urlsplit(envelope_dsn).username
        except ValueError:
            key = None
        if not key:
            raise AuthError("The envelope header's dsn holds no key; use the DSN the tray printed (connect).")
        found.append(key)
    if not found:
        raise AuthError(
            "No Sentry key: send the DSN's key in X-Sentry-Auth (Sentry sentry_key=KEY, sentry_version=7) "
            "or as ?sentry_key=KEY; a stock SDK does so when SENTRY_DSN is the DSN the tray printed (connect)."
        )
    if len(set(found)) > 1:
        raise AuthError("The request carries two different Sentry keys; send the DSN's key in one place only.")
    return found[0]


def _key_of_header(header: str) -> str:
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "sentry":
        raise AuthError("X-Sentry-Auth must start with 'Sentry ' (Sentry sentry_key=KEY, sentry_version=7).")
    pairs: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, value = part.strip().partition("=")
        if not equals:
            continue
        if name.strip() in pairs:
            raise AuthError(f"X-Sentry-Auth gives {_shown(name.strip())} twice; give it once.")
        pairs[name.strip()] = value.strip()
    key = pairs.get("sentry_key", "")
    if not key:
        raise AuthError("X-Sentry-Auth has no sentry_key; send Sentry sentry_key=KEY, sentry_version=7.")
    return key


# -- words ----------------------------------------------------------------------------------


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _cut(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=True) if isinstance(value, str | int | float | bool) else type(value).__name__
    return _cut(text)


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    return "a number"
