"""Collection windows: the UTC period a batch covers, per manifest cadence."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from .clock import period_start

Cadence = Literal["hourly", "daily", "weekly"]
CADENCES: tuple[Cadence, ...] = ("hourly", "daily", "weekly")

# Each cadence's calendar period and its length.
_PERIODS: dict[Cadence, tuple[str, timedelta]] = {
    "hourly": ("hour", timedelta(hours=1)),
    "daily": ("day", timedelta(days=1)),
    "weekly": ("week", timedelta(days=7)),
}


def window_for(cadence: Cadence, moment: datetime) -> tuple[datetime, datetime]:
    """The window ``[start, end)`` of ``cadence`` that contains ``moment``.

    Hours and days start on the hour and at midnight UTC; weeks start on Monday
    00:00 UTC (ISO 8601 weeks), so every instance computes the same windows.
    """
    period, length = _PERIODS.get(cadence, _PERIODS["weekly"])  # as weekly, any other word
    start = period_start(moment, period)
    return start, start + length
