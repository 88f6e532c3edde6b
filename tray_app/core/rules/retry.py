"""The delivery rules as pure functions: what an answer means and when to try again.

They follow the OTLP exporter rules (DESIGN.md): 2xx is delivered; 408, 429, 502, 503,
504 and network errors are retried with exponential backoff and jitter, honouring
``Retry-After`` (seconds or an HTTP date, capped at an hour); anything else fails for good.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

Verdict = Literal["delivered", "retry", "failed"]

RETRYABLE = frozenset({408, 429, 502, 503, 504})
FIRST_DELAY_S = 5.0
MAX_DELAY_S = 3600.0
RETRY_AFTER_CAP_S = 3600.0


def verdict(status: int | None) -> Verdict:
    """``status`` is the HTTP status, or None for a network error (refused, reset, timeout)."""
    if status is None or status in RETRYABLE:
        return "retry"
    if 200 <= status < 300:
        return "delivered"
    return "failed"


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
