"""A collector's answer to an OTLP export: did it keep everything we sent?

An OTLP/HTTP server answers a request it took only in part with 200 and an
``Export…ServiceResponse`` whose ``partial_success`` counts what it refused and says why
(OTLP specification, "Partial Success"). That is a delivery (the client must not retry it:
the same bytes would be refused again), but the person should learn of it, so the receipt
keeps the count and the message (DESIGN.md, "Wire formats": "A vendor's partial success is
recorded with its counts, not retried").

The answer comes in the request's encoding. We send JSON, so it is normally OTLP/JSON; a
collector that answers protobuf anyway is read with ``opentelemetry-proto`` (the logs and
metrics responses have the same layout: ``partial_success`` = 1, its count = 1, its
message = 2). An answer that is neither is no partial success: the 2xx is what counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .otlp_wire import media_type

MAX_MESSAGE = 300  # characters of the collector's message kept in a receipt
_COUNT_KEYS = {"rejectedLogRecords": "log records", "rejectedDataPoints": "data points", "rejectedSpans": "spans"}


@dataclass(frozen=True)
class PartialSuccess:
    """What a collector said it did not keep of one export."""

    rejected: int  # records or points refused (0: a warning only)
    message: str  # the collector's error_message, cut to MAX_MESSAGE characters
    what: str  # "log records" or "data points"

    @property
    def text(self) -> str:
        """One line for the receipt: "refused 3 log records: <message>"."""
        said = f": {self.message}" if self.message else ""
        if self.rejected:
            return f"the collector refused {self.rejected} {self.what}{said}"
        return f"the collector kept everything and warned{said}"


def read_partial_success(body: bytes, content_type: str, what: str) -> PartialSuccess | None:
    """The ``partial_success`` of a 2xx answer, or None when it kept everything and said
    nothing (an empty body, ``{}``, or an answer that is not an OTLP response at all).
    ``what`` names the records sent ("log records" or "data points")."""
    if not body.strip():
        return None
    kind = media_type(content_type)
    if kind == "protobuf":
        return _from_protobuf(body, what)
    return _from_json(body, what)


def _from_json(body: bytes, what: str) -> PartialSuccess | None:
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        return None
    partial = answer.get("partialSuccess", answer.get("partial_success")) if isinstance(answer, dict) else None
    if not isinstance(partial, dict):
        return None
    rejected = 0
    for key, words in _COUNT_KEYS.items():
        snake = "rejected_" + words.replace(" ", "_")
        value = partial.get(key, partial.get(snake))
        if value is not None:
            rejected, what = _count(value), words
            break
    message = partial.get("errorMessage", partial.get("error_message"))
    return _made(rejected, message if isinstance(message, str) else "", what)


def _count(value: Any) -> int:
    """An int64 in OTLP/JSON: a number or a decimal string; anything else counts as unknown (0)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    text = value.strip() if isinstance(value, str) else ""
    if text.isascii() and text.isdigit():  # "²" is a digit to isdigit() and not to int()
        return int(text[:19])
    return 0


def _from_protobuf(body: bytes, what: str) -> PartialSuccess | None:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    try:
        response = ExportLogsServiceResponse.FromString(body)
    except (DecodeError, RecursionError, ValueError):
        return None
    if not response.HasField("partial_success"):
        return None
    partial = response.partial_success
    return _made(max(0, int(partial.rejected_log_records)), str(partial.error_message), what)


def _made(rejected: int, message: str, what: str) -> PartialSuccess | None:
    message = " ".join(message.split())
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    if not rejected and not message:
        return None
    return PartialSuccess(rejected, message, what)


__all__ = ["MAX_MESSAGE", "PartialSuccess", "read_partial_success"]
