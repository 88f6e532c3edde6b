"""The delivery rules as pure functions: what an answer means and when to try again.

They follow the OTLP exporter rules (DESIGN.md): 2xx is delivered; 408, 429, 502, 503,
504 and network errors are retried with exponential backoff and jitter, honouring
``Retry-After`` (seconds or an HTTP date, capped at an hour); anything else fails for good.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

from .clock import to_iso
from .consent import BatchStatus
from .otlp_answer import PartialSuccess
from .receipts import Action


class Verdict(StrEnum):
    """What one answer from the vendor means."""

    DELIVERED = "delivered"  # 2xx: the vendor has the bytes
    RETRY = "retry"  # a network error, 408, 429, 502, 503 or 504: try again later
    FAILED = "failed"  # any other answer: refused for good


class Outcome(StrEnum):
    """What became of one claimed delivery (``DeliveryOutcome.outcome``); each member's
    value is the text the CLI prints and ``deliver --json`` holds."""

    DELIVERED = "delivered"  # the vendor accepted the bytes
    DELIVERED_PARTLY = "delivered; the vendor refused part of it"  # 2xx with an OTLP partial_success refusing some
    RETRYING = "retrying"  # not through, or refused for now: scheduled again (next_attempt_at)
    FAILED = "failed"  # the vendor refused the bytes for good
    DISCARDED_APP_BLOCKED = "discarded: app blocked"  # the person blocked the app during the send
    WAITING_FOR_CREDENTIALS = "waiting for credentials"  # no secret (or no keyring): held, no attempt spent
    ALREADY = "already"  # the batch was decided meanwhile: "already <batch_status>" ("gone" when deleted)
    TAKEN_OVER = "taken over by another sender"  # our lease ran out; the other sender records its own send
    NO_LONGER_DUE = "not sent: no longer due"  # discarded, blocked, paused or taken over since the claim
    SHUTTING_DOWN = "not sent: shutting down"  # the forwarder is closing; a later round sends it
    UNRECORDED = "unrecorded"  # sent, but the answer could not be written; the lease runs out, resent


def outcome_text(outcome: Outcome, batch_status: BatchStatus | None = None) -> str:
    """The outcome in words: its value, or "already <status>" ("already gone")."""
    if outcome == Outcome.ALREADY:
        return f"already {batch_status or 'gone'}"
    return outcome.value


RETRYABLE = frozenset({408, 429, 502, 503, 504})
FIRST_DELAY_S = 5.0
MAX_DELAY_S = 3600.0
RETRY_AFTER_CAP_S = 3600.0


def verdict(status: int | None) -> Verdict:
    """``status`` is the HTTP status, or None for a network error (refused, reset, timeout)."""
    if status is None or status in RETRYABLE:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    return Verdict.FAILED


def backoff_s(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after ``attempts`` failed tries: "equal jitter" (a random point in
    the upper half) under an exponential ceiling of 5 s, 10 s, 20 s … capped at an hour,
    so many retries do not align."""
    ceiling = min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** min(max(0, attempts - 1), 30))
    return (rng or random).uniform(ceiling / 2, ceiling)


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` in seconds (from seconds or an HTTP date), capped; None if absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), RETRY_AFTER_CAP_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, (when - now).total_seconds()), RETRY_AFTER_CAP_S)


def next_attempt(now: datetime, attempts: int, retry_after: float | None, rng: random.Random | None = None) -> datetime:
    """When to try again: the vendor's Retry-After if it asked for longer than our backoff."""
    wait = backoff_s(attempts, rng)
    if retry_after is not None:
        wait = max(wait, retry_after)
    return now + timedelta(seconds=wait)


@dataclass(frozen=True)
class Settlement:
    """What to record for one answer: the whole outcome of a send, decided before any write.

    ``delivery`` is every field of the delivery row to change (the lease always ends);
    ``batch_status`` the batch's new status (None: it stays approved); ``discard`` that
    the batch is to be discarded instead (its app was blocked meanwhile), with its own
    receipt; otherwise ``action`` and ``detail`` are the receipt's.
    """

    outcome: Outcome  # DELIVERED, DELIVERED_PARTLY, RETRYING, FAILED or DISCARDED_APP_BLOCKED
    delivery: dict[str, object]
    batch_status: BatchStatus | None = None
    discard: bool = False
    action: Action | None = None  # DELIVERED, RETRYING or FAILED
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the outcome's error (for a delivery: what a collector said it refused)
    next_attempt_at: str | None = None


def settle(
    *,
    status: int | None,
    error: str | None,
    retry_after: str | None,
    attempts: int,
    now: datetime,
    app_blocked: bool,
    endpoint: str,
    payload_sha256: str,
    payload_bytes: int,
    request_id: str | None = None,
    elapsed_ms: float | None = None,
    partial: PartialSuccess | None = None,
    rng: random.Random | None = None,
    refused: bool = False,
) -> Settlement:
    """What an answer (``status``, or None for a network error) to the ``attempts``-th
    send means: delivered, retried at a time from the backoff and ``Retry-After``, failed
    for good, or, unless delivered, discarded because the person blocked the app meanwhile.
    A 2xx with an OTLP ``partial`` success is delivered (resending would be refused the
    same way) and its receipt says what the vendor refused. ``refused`` fails it for good
    whatever the status: a problem that no retry mends (a DAP aggregator's HPKE configuration
    that Telemetry Tray cannot encrypt to, a DAP problem document that refuses the report)."""
    lease_ends: dict[str, object] = {"attempts": attempts, "lease_owner": None, "lease_expires_at": None}
    result = Verdict.FAILED if refused else verdict(status)
    if result != Verdict.DELIVERED and app_blocked:
        return Settlement(Outcome.DISCARDED_APP_BLOCKED, lease_ends, discard=True, error=error)
    common: dict[str, Any] = {"endpoint": endpoint, "attempts": attempts}
    if status is not None:
        common["status"] = status
    if error:
        common["error"] = error[:300]
    if result == Verdict.DELIVERED:
        detail = {
            **common,
            "payload_sha256": payload_sha256,
            "payload_bytes": payload_bytes,
            "request_id": request_id,
            "elapsed_ms": round(elapsed_ms, 1) if elapsed_ms is not None else None,
        }
        outcome, said = Outcome.DELIVERED, None
        if partial is not None:
            detail["partial"] = said = partial.text
            if partial.rejected:
                outcome = Outcome.DELIVERED_PARTLY
        fields = {**lease_ends, "last_status": status, "last_error": None}
        return Settlement(outcome, fields, BatchStatus.DELIVERED, action=Action.DELIVERED, detail=detail, error=said)
    fields = {**lease_ends, "last_status": status, "last_error": error}
    if result == Verdict.RETRY:
        when = to_iso(next_attempt(now, attempts, retry_after_s(retry_after, now), rng))
        fields["next_attempt_at"] = when
        detail = {**common, "next_attempt_at": when}
        return Settlement(
            Outcome.RETRYING, fields, action=Action.RETRYING, detail=detail, error=error, next_attempt_at=when
        )
    return Settlement(Outcome.FAILED, fields, BatchStatus.FAILED, action=Action.FAILED, detail=common, error=error)
