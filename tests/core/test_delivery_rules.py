"""The retry rules as pure functions (DESIGN.md: the OTLP exporter rules)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tray_app.core.rules.retry import (
    MAX_DELAY_S,
    RETRY_AFTER_CAP_S,
    backoff_s,
    next_attempt,
    retry_after_s,
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
