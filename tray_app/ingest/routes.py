"""The local ingest API as a WSGI application: its routes.

A shell over the broker (DESIGN.md, "Local ingest HTTP API"). Every answer, error or
not, is JSON; every error is ``{"error": "<code>", "message": "<what to fix>"}``.
A report is answered 202 only after the broker has committed it to the database. The
defences and error answers it shares with the OTLP receiver are in ``wsgi_app.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from ..core import (
    MAX_BODY_BYTES,
    MAX_MANIFEST_BYTES,
    Broker,
    MalformedError,
    decode_reports,
    manifest_from_obj,
    unique_keys,
)
from .wsgi_app import Environ, Handler, HttpError, LoopbackApp, Reply, bearer, error_body, read_body, to_json


class IngestApp(LoopbackApp):
    """The WSGI callable. ``on_ingest`` is called after reports or a registration were
    stored (the running instance wakes its schedule and tells the UI)."""

    paths_hint = "the API is /v1/health, /v1/apps, /v1/reports."

    def __init__(
        self,
        broker: Broker,
        version: str,
        on_ingest: Callable[[], None] | None = None,
        on_wake: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.broker = broker
        self.version = version
        self.on_ingest = on_ingest
        self.on_wake = on_wake

    # -- routing ---------------------------------------------------------------------

    def routes(self) -> dict[str, dict[str, Handler]]:
        return {
            "/v1/health": {"GET": self._health},
            "/v1/apps": {"POST": self._register},
            "/v1/reports": {"POST": self._reports},
            "/v1/wake": {"POST": self._wake},
        }

    def _health(self, environ: Environ) -> Reply:
        return Reply(200, to_json({"status": "ok", "version": self.version}))

    def _wake(self, environ: Environ) -> Reply:
        # Another process (the CLI) changed something: look for due work now. It carries
        # no data and changes nothing by itself, so it needs no token.
        if self.on_wake is not None:
            self.on_wake()
        return Reply(202, to_json({"status": "woken"}))

    def _register(self, environ: Environ) -> Reply:
        body = _json_body(environ, MAX_MANIFEST_BYTES)
        try:
            obj = json.loads(body.decode("utf-8"), object_pairs_hook=unique_keys)
        except MalformedError:
            raise
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise MalformedError(f"The manifest is not valid JSON: {exc}.") from None
        manifest = manifest_from_obj(obj)
        result = self.broker.register(manifest, token=bearer(environ, required=False))
        if self.on_ingest is not None:
            self.on_ingest()
        return Reply(201, to_json({"app_id": result.app_id, "token": result.token, "status": result.status}))

    def _reports(self, environ: Environ) -> Reply:
        token = bearer(environ, required=True)
        assert token is not None
        app = self.broker.authenticate(token)
        key = _idempotency_key(environ)
        reports = decode_reports(_json_body(environ, MAX_BODY_BYTES))
        result = self.broker.ingest(app.app_id, reports, key=key)
        if result.accepted and self.on_ingest is not None:
            self.on_ingest()
        if not result.accepted:
            return Reply(
                422,
                error_body(
                    "all_rejected",
                    "No report was accepted; each one's problem is listed in 'rejected'.",
                    rejected=result.to_obj()["rejected"],
                    dropped_fields=result.dropped_fields,
                ),
            )
        return Reply(202, to_json(result.to_obj()))


def _json_body(environ: Environ, limit: int) -> bytes:
    kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HttpError(415, "unsupported_media_type", "Send the body as Content-Type: application/json.")
    return read_body(environ, limit)


_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _idempotency_key(environ: Environ) -> str | None:
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
