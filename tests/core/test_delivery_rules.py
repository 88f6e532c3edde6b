"""The retry rules as pure functions (DESIGN.md: the OTLP exporter rules)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tray_app.core.rules.clock import to_iso
from tray_app.core.rules.retry import (
    MAX_DELAY_S,
    RETRY_AFTER_CAP_S,
    Settlement,
    backoff_s,
    next_attempt,
    retry_after_s,
    settle,
    verdict,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "delivered"), (201, "delivered"), (202, "delivered"), (204, "delivered"),
        (408, "retry"), (429, "retry"), (502, "retry"), (503, "retry"), (504, "retry"), (None, "retry"),
        (301, "failed"), (307, "failed"), (400, "failed"), (401, "failed"), (403, "failed"),
        (404, "failed"), (413, "failed"), (500, "failed"), (501, "failed"), (505, "failed"),
    ],
)  # fmt: skip
def test_verdicts(status: int | None, expected: str) -> None:
    assert verdict(status) == expected


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempts, ceiling in [(1, 5), (2, 10), (3, 20), (4, 40), (12, MAX_DELAY_S), (40, MAX_DELAY_S)]:
        waits = [backoff_s(attempts, rng) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len({round(w, 6) for w in waits}) > 150  # jittered, not fixed


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("99999", RETRY_AFTER_CAP_S),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
        (format_datetime(NOW + timedelta(days=2), usegmt=True), RETRY_AFTER_CAP_S),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
    ],
)
def test_retry_after(header: str | None, expected: float | None) -> None:
    assert retry_after_s(header, NOW) == expected


@given(attempts=st.integers(1, 100), retry_after=st.none() | st.floats(0, RETRY_AFTER_CAP_S))
def test_the_next_attempt_honours_retry_after_and_never_exceeds_the_caps(
    attempts: int, retry_after: float | None
) -> None:
    when = next_attempt(NOW, attempts, retry_after, random.Random(attempts))
    wait = (when - NOW).total_seconds()
    assert 0 < wait <= max(MAX_DELAY_S, RETRY_AFTER_CAP_S)
    if retry_after is not None:
        assert wait >= retry_after - 1e-6  # timedelta keeps whole microseconds


# -- settle: from an answer to what is recorded -------------------------------------

ENDPOINT = "https://t.example.org/v1"
SHA = "ab" * 32
LEASE_ENDS = {"lease_owner": None, "lease_expires_at": None}


def _settle(status: int | None, *, attempts: int = 1, blocked: bool = False, **kw: object) -> Settlement:
    answer: dict[str, object] = {"error": None if status and 200 <= status < 300 else f"HTTP {status}: no"}
    answer["retry_after"] = None
    answer.update(kw)
    return settle(
        status=status, attempts=attempts, now=NOW, app_blocked=blocked, endpoint=ENDPOINT,
        payload_sha256=SHA, payload_bytes=123, rng=random.Random(1), **answer,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_2xx_is_delivered_with_the_bytes_and_the_answer_on_record() -> None:
    s = _settle(202, attempts=3, retry_after="120", request_id="req-1", elapsed_ms=12.345)
    assert s == Settlement(
        outcome="delivered",
        delivery={"attempts": 3, **LEASE_ENDS, "last_status": 202, "last_error": None},
        batch_status="delivered",
        action="delivered",
        detail={
            "endpoint": ENDPOINT, "attempts": 3, "status": 202, "payload_sha256": SHA, "payload_bytes": 123,
            "request_id": "req-1", "elapsed_ms": 12.3,
        },
    )  # fmt: skip
    assert _settle(200, elapsed_ms=None).detail["elapsed_ms"] is None


def test_a_delivery_counts_even_if_the_app_was_blocked_meanwhile() -> None:
    assert _settle(200, blocked=True).outcome == "delivered"


@pytest.mark.parametrize("status", [None, 408, 429, 502, 503, 504])
def test_a_retryable_answer_is_scheduled_by_the_backoff(status: int | None) -> None:
    s = _settle(status, attempts=2, error="ConnectError: refused" if status is None else "HTTP 503: busy")
    when = to_iso(next_attempt(NOW, 2, None, random.Random(1)))
    error = "ConnectError: refused" if status is None else "HTTP 503: busy"
    assert s == Settlement(
        outcome="retrying",
        delivery={"attempts": 2, **LEASE_ENDS, "last_status": status, "last_error": error, "next_attempt_at": when},
        action="retrying",
        detail={"endpoint": ENDPOINT, "attempts": 2, **({"status": status} if status else {}), "error": error,
                "next_attempt_at": when},
        error=error,
        next_attempt_at=when,
    )  # fmt: skip
    assert s.batch_status is None and not s.discard  # still approved: it goes again


def test_retry_after_longer_than_the_backoff_wins() -> None:
    s = _settle(429, retry_after="900")
    assert s.next_attempt_at == to_iso(NOW + timedelta(seconds=900))
    assert _settle(429, retry_after="999999").next_attempt_at == to_iso(NOW + timedelta(seconds=RETRY_AFTER_CAP_S))


@pytest.mark.parametrize("status", [301, 400, 401, 404, 413, 500])
def test_any_other_answer_fails_for_good(status: int) -> None:
    s = _settle(status, attempts=4)
    error = f"HTTP {status}: no"
    assert s == Settlement(
        outcome="failed",
        delivery={"attempts": 4, **LEASE_ENDS, "last_status": status, "last_error": error},
        batch_status="failed",
        action="failed",
        detail={"endpoint": ENDPOINT, "attempts": 4, "status": status, "error": error},
        error=error,
    )


def test_the_receipt_keeps_300_characters_of_the_error_and_the_row_all_of_it() -> None:
    long = "x" * 1000
    s = _settle(400, error=long)
    assert s.detail["error"] == long[:300]
    assert s.delivery["last_error"] == long and s.error == long


@pytest.mark.parametrize("status", [None, 503, 400])
def test_an_undelivered_batch_of_an_app_blocked_meanwhile_is_discarded(status: int | None) -> None:
    s = _settle(status, attempts=2, blocked=True)
    # Only the attempt and the lease are written; the discard has its own receipt.
    assert s == Settlement(
        outcome="discarded: app blocked",
        delivery={"attempts": 2, **LEASE_ENDS},
        discard=True,
        error=f"HTTP {status}: no",
    )
    assert s.action is None and s.batch_status is None and s.next_attempt_at is None
