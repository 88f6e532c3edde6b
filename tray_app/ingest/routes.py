"""The local ingest API as a WSGI application: routes, limits and error bodies.

A shell over the broker (DESIGN.md, "Local ingest HTTP API"). Every answer, error or
not, is JSON; every error is ``{"error": "<code>", "message": "<what to fix>"}``.
A report is answered 202 only after the broker has committed it to the database.
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from ..core import (
    MAX_BODY_BYTES,
    MAX_MANIFEST_BYTES,
    AuthError,
    BlockedError,
    Broker,
    ConflictError,
    InputError,
    MalformedError,
    ManifestError,
    NotFoundError,
    StoreError,
    TooLargeError,
    TooManyWaiting,
    TrayError,
    decode_reports,
    manifest_from_obj,
    unique_keys,
)

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: Headers | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []


# Which TrayError becomes which answer; the first matching class wins.
_ERRORS: list[tuple[type[TrayError], int, str]] = [
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
]


def _answer_for(exc: TrayError) -> tuple[int, str]:
    for cls, status, code in _ERRORS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal"


def error_body(code: str, message: str, **extra: Any) -> bytes:
    return json.dumps({"error": code, "message": message, **extra}, ensure_ascii=False).encode("utf-8")


class IngestApp:
    """The WSGI callable. ``on_ingest`` is called after reports or a registration were
    stored (the running instance wakes its schedule and tells the UI)."""

    def __init__(
        self,
        broker: Broker,
        version: str,
        on_ingest: Callable[[], None] | None = None,
        on_wake: Callable[[], None] | None = None,
    ) -> None:
        self.broker = broker
        self.version = version
        self.on_ingest = on_ingest
        self.on_wake = on_wake
        self.port: int | None = None  # set once the server is bound, for the Host check

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers: Headers = []
        try:
            status, payload = self._route(environ)
        except HttpError as exc:
            status, payload, headers = exc.status, error_body(exc.code, exc.message), exc.headers
        except TrayError as exc:
            status, code = _answer_for(exc)
            payload = error_body(code, exc.message)
            if status == 401:
                headers = [("WWW-Authenticate", 'Bearer realm="telemetry-tray"')]
            elif status == 503:
                headers = [("Retry-After", "5")]
        except Exception:
            log.exception("unexpected error answering %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            status, payload = 500, error_body("internal", "Telemetry Tray failed to answer; it is logged. Try again.")
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                *headers,
            ],
        )
        return [payload]

    # -- routing ---------------------------------------------------------------------

    def _route(self, environ: dict[str, Any]) -> tuple[int, bytes]:
        self._refuse_foreign_callers(environ)
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        routes: dict[str, dict[str, Callable[[dict[str, Any]], tuple[int, bytes]]]] = {
            "/v1/health": {"GET": self._health},
            "/v1/apps": {"POST": self._register},
            "/v1/reports": {"POST": self._reports},
            "/v1/wake": {"POST": self._wake},
        }
        handlers = routes.get(path)
        if handlers is None:
            raise HttpError(
                404, "not_found", f"There is no {_cut(path)!r} here; the API is /v1/health, /v1/apps, /v1/reports."
            )
        handler = handlers.get(method)
        if handler is None:
            allowed = ", ".join(handlers)
            message = f"{path} takes {allowed}, not {_cut(method)}."
            raise HttpError(405, "method_not_allowed", message, [("Allow", allowed)])
        return handler(environ)

    def _refuse_foreign_callers(self, environ: dict[str, Any]) -> None:
        # A web page must not reach us: browsers send Origin on cross-site requests,
        # and a DNS-rebinding page would arrive with its own host name in Host.
        if environ.get("HTTP_ORIGIN"):
            raise HttpError(403, "forbidden_origin", "Requests from web pages are not accepted.")
        host = environ.get("HTTP_HOST", "")
        if self.port is not None and host not in _loopback_hosts(self.port):
            raise HttpError(403, "forbidden_host", f"Host {host[:100]!r} is not this machine's loopback address.")
        # "GET http://elsewhere/v1/health" (a proxy's form) names another host in the
        # request line itself; we are nobody's proxy.
        target = environ.get("REQUEST_URI", "/")
        if not target.startswith("/"):
            raise HttpError(403, "forbidden_host", f"Send a path ({_cut(target)!r} is not one); this is not a proxy.")

    def _health(self, environ: dict[str, Any]) -> tuple[int, bytes]:
        return 200, _json({"status": "ok", "version": self.version})

    def _wake(self, environ: dict[str, Any]) -> tuple[int, bytes]:
        # Another process (the CLI) changed something: look for due work now. It carries
        # no data and changes nothing by itself, so it needs no token.
        if self.on_wake is not None:
            self.on_wake()
        return 202, _json({"status": "woken"})

    def _register(self, environ: dict[str, Any]) -> tuple[int, bytes]:
        body = self._json_body(environ, MAX_MANIFEST_BYTES)
        try:
            obj = json.loads(body.decode("utf-8"), object_pairs_hook=unique_keys)
        except MalformedError:
            raise
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise MalformedError(f"The manifest is not valid JSON: {exc}.") from None
        manifest = manifest_from_obj(obj)
        result = self.broker.register(manifest, token=_bearer(environ, required=False))
        if self.on_ingest is not None:
            self.on_ingest()
        return 201, _json({"app_id": result.app_id, "token": result.token, "status": result.status})

    def _reports(self, environ: dict[str, Any]) -> tuple[int, bytes]:
        token = _bearer(environ, required=True)
        assert token is not None
        app = self.broker.authenticate(token)
        key = _idempotency_key(environ)
        reports = decode_reports(self._json_body(environ, MAX_BODY_BYTES))
        result = self.broker.ingest(app.app_id, reports, key=key)
        if result.accepted and self.on_ingest is not None:
            self.on_ingest()
        if not result.accepted:
            return 422, error_body(
                "all_rejected",
                "No report was accepted; each one's problem is listed in 'rejected'.",
                rejected=result.to_obj()["rejected"],
                dropped_fields=result.dropped_fields,
            )
        return 202, _json(result.to_obj())

    # -- bodies ----------------------------------------------------------------------

    def _json_body(self, environ: dict[str, Any], limit: int) -> bytes:
        kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise HttpError(415, "unsupported_media_type", "Send the body as Content-Type: application/json.")
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
            body = _gunzip(body, limit)
        return body


_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _idempotency_key(environ: dict[str, Any]) -> str | None:
    """The request's optional ``Idempotency-Key``: sent again with the same key, the same
    reports are stored once (the client SDK sets one per request)."""
    key = environ.get("HTTP_IDEMPOTENCY_KEY")
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise HttpError(
            400, "bad_request", "Idempotency-Key must be 1 to 128 letters, digits or . _ : - (a UUID will do)."
        )
    return str(key)


def _gunzip(data: bytes, limit: int) -> bytes:
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


def _bearer(environ: dict[str, Any], *, required: bool) -> str | None:
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if required or header:
        raise AuthError("Send the app's token as 'Authorization: Bearer TOKEN' (printed when it registered).")
    return None


def _loopback_hosts(port: int) -> set[str]:
    return {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}


def _cut(text: str, limit: int = 100) -> str:
    # A path or method is echoed to say what was wrong, not to return 64 KiB of it.
    return text if len(text) <= limit else text[:limit] + "…"


def _json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")
