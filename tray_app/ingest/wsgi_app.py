"""What every route module of the loopback endpoint shares: the defences and the answers.

The native API (``routes.py``) and the OTLP/HTTP receiver (``otlp_routes.py``) are each a
:class:`LoopbackApp`: the same Host, Origin and request-line checks (a web page or a
DNS-rebinding page never reaches a route), the same body reading (``Content-Length`` over
the limit refused before reading, gzip decompressed with the limit applied to what comes out),
the same bearer token, and the same JSON error bodies
(``{"error": "<code>", "message": "<what to fix>"}``, with ``WWW-Authenticate`` on a 401 and
``Retry-After`` on a 503). A route module only says which paths it serves and how an error of
the core becomes an answer.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

from ..core import (
    AuthError,
    BlockedError,
    ConflictError,
    InputError,
    MalformedError,
    ManifestError,
    NotFoundError,
    StoreError,
    TooLargeError,
    TooManyWaiting,
    TrayError,
)

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
RETRY_AFTER_S = 5  # the Retry-After of a 503: the database was busy or full

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]
Environ = dict[str, Any]


class HttpError(Exception):
    """An answer other than success. ``reason`` replaces the status line's standard phrase:
    some clients log only the status line (the Python OTLP exporter logs "code: 404, reason:
    …"), so a short instruction there reaches the app's log."""

    def __init__(
        self, status: int, code: str, message: str, headers: Headers | None = None, *, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []
        self.reason = reason


@dataclass(frozen=True)
class Reply:
    """A successful answer: its status, body and content type (JSON unless a route says)."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE


Handler = Callable[[Environ], Reply]
ErrorTable = Sequence[tuple[type[TrayError], int, str]]

# Which TrayError becomes which answer; the first matching class wins.
ERRORS: ErrorTable = (
    (MalformedError, 400, "bad_json"),
    (TooLargeError, 413, "too_large"),
    (ManifestError, 422, "invalid_manifest"),
    (AuthError, 401, "unauthorized"),
    (BlockedError, 403, "app_blocked"),
    (TooManyWaiting, 429, "too_many_waiting"),
    (ConflictError, 409, "conflict"),
    (NotFoundError, 404, "not_found"),
    (InputError, 400, "bad_request"),
    (StoreError, 503, "unavailable"),
)


def error_body(code: str, message: str, **extra: Any) -> bytes:
    return json.dumps({"error": code, "message": message, **extra}, ensure_ascii=False).encode("utf-8")


def to_json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


class LoopbackApp:
    """A WSGI callable on 127.0.0.1: checks who calls, routes, and answers every error as JSON.

    Subclasses give :meth:`routes` (path → method → handler), :attr:`paths_hint` (said in a
    404) and, if their codes differ, :attr:`errors`. ``port`` is set by the server once it is
    bound: the Host check needs it."""

    errors: ClassVar[ErrorTable] = ERRORS
    paths_hint: ClassVar[str] = ""

    def __init__(self) -> None:
        self.port: int | None = None

    def routes(self) -> dict[str, dict[str, Handler]]:
        raise NotImplementedError

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        headers: Headers = []
        content_type = JSON_TYPE
        reason: str | None = None
        try:
            reply = self._route(environ)
            status, payload, content_type = reply.status, reply.body, reply.content_type
        except HttpError as exc:
            status, payload, headers = exc.status, error_body(exc.code, exc.message), exc.headers
            reason = exc.reason
        except TrayError as exc:
            status, code = self._answer_for(exc)
            payload = error_body(code, exc.message)
            if status == 401:
                headers = [("WWW-Authenticate", 'Bearer realm="telemetry-tray"')]
            elif status == 503:
                headers = [("Retry-After", str(RETRY_AFTER_S))]
        except Exception:
            log.exception("unexpected error answering %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            status, payload = 500, error_body("internal", "Telemetry Tray failed to answer; it is logged. Try again.")
        start_response(
            f"{status} {reason or HTTPStatus(status).phrase}",
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(payload))),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                *headers,
            ],
        )
        return [payload]

    def _answer_for(self, exc: TrayError) -> tuple[int, str]:
        for cls, status, code in self.errors:
            if isinstance(exc, cls):
                return status, code
        return 500, "internal"

    def _route(self, environ: Environ) -> Reply:
        refuse_foreign_callers(environ, self.port)
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        handlers = self.routes().get(path)
        if handlers is None:
            raise HttpError(404, "not_found", f"There is no {cut(path)!r} here; {self.paths_hint}")
        handler = handlers.get(method)
        if handler is None:
            allowed = ", ".join(handlers)
            message = f"{path} takes {allowed}, not {cut(method)}."
            raise HttpError(405, "method_not_allowed", message, [("Allow", allowed)])
        return handler(environ)


def refuse_foreign_callers(environ: Environ, port: int | None) -> None:
    """403 for a web page (``Origin``), a DNS-rebinding page (a ``Host`` that is not this
    machine's loopback address at ``port``) and a proxy's request line (``GET http://…``)."""
    # A web page must not reach us: browsers send Origin on cross-site requests,
    # and a DNS-rebinding page would arrive with its own host name in Host.
    if environ.get("HTTP_ORIGIN"):
        raise HttpError(403, "forbidden_origin", "Requests from web pages are not accepted.")
    host = environ.get("HTTP_HOST", "")
    if port is not None and host not in loopback_hosts(port):
        raise HttpError(403, "forbidden_host", f"Host {host[:100]!r} is not this machine's loopback address.")
    # "GET http://elsewhere/v1/health" (a proxy's form) names another host in the
    # request line itself; we are nobody's proxy.
    target = environ.get("REQUEST_URI", "/")
    if not target.startswith("/"):
        raise HttpError(403, "forbidden_host", f"Send a path ({cut(target)!r} is not one); this is not a proxy.")


def loopback_hosts(port: int) -> set[str]:
    return {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}


def read_body(environ: Environ, limit: int) -> bytes:
    """The request body, gunzipped if it says so, at most ``limit`` bytes before and after
    decompression (a ``Content-Length`` over it is refused before anything is read). The
    caller checks the ``Content-Type`` first."""
    encoding = environ.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise HttpError(415, "unsupported_media_type", f"Content-Encoding {encoding!r} is not accepted; use gzip.")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpError(400, "bad_request", "Content-Length is not a number.") from None
    if length > limit:
        raise TooLargeError(f"The body is {length} bytes; at most {limit} are accepted. Send less at a time.")
    body: bytes = environ["wsgi.input"].read(length) if length else b""
    if encoding == "gzip":
        body = gunzip(body, limit)
    return body


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress with the limit applied to the decompressed size (no zip bombs)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise MalformedError(f"The gzip body is damaged ({exc}).") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise TooLargeError(f"The body is over {limit} bytes once decompressed; send less at a time.")
    if not inflater.eof:
        raise MalformedError("The gzip body ends too early.")
    if inflater.unused_data:
        raise MalformedError("The gzip body has data after its end; send one gzip stream.")
    return out


def bearer(environ: Environ, *, required: bool) -> str | None:
    """The token of ``Authorization: Bearer TOKEN``; None when there is no header and none
    is ``required``. Any other ``Authorization`` is an :class:`AuthError` (401)."""
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if required or header:
        raise AuthError("Send the app's token as 'Authorization: Bearer TOKEN' (printed when it registered).")
    return None


def cut(text: str, limit: int = 100) -> str:
    # A path or method is echoed to say what was wrong, not to return 64 KiB of it.
    return text if len(text) <= limit else text[:limit] + "…"
