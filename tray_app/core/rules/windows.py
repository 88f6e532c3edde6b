"""Collection windows: the UTC period a batch covers, per manifest cadence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

Cadence = Literal["hourly", "daily", "weekly"]
CADENCES: tuple[Cadence, ...] = ("hourly", "daily", "weekly")


def window_for(cadence: Cadence, moment: datetime) -> tuple[datetime, datetime]:
    """The window ``[start, end)`` of ``cadence`` that contains ``moment``.

    Hours and days start on the hour and at midnight UTC; weeks start on Monday
    00:00 UTC (ISO 8601 weeks), so every instance computes the same windows.
    """
    moment = moment.astimezone(UTC)
    if cadence == "hourly":
        start = moment.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if cadence == "daily":
        return day, day + timedelta(days=1)
    start = day - timedelta(days=day.weekday())
    return start, start + timedelta(days=7)
