"""Time as the core sees it: aware UTC datetimes, stored as ISO 8601 text.

The text form sorts in time order, so the store can compare it as strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    """``2026-11-24T20:31:05Z``; microseconds only when there are any."""
    m = moment.astimezone(UTC)
    # Formatted by hand: strftime("%Y") drops leading zeros for years before 1000.
    text = f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
    return f"{text}.{m.microsecond:06d}Z" if m.microsecond else f"{text}Z"


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$")


def from_iso(text: str) -> datetime:
    """Parse an extended-format ISO 8601 timestamp with a zone; raise ValueError otherwise."""
    if not _ISO.match(text):
        raise ValueError("not an extended ISO 8601 timestamp with a zone")
    if "." in text:
        # Python keeps microseconds; cut longer fractions here rather than fail.
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + rest[: min(digits, 6)] + rest[digits:]
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return moment.astimezone(UTC)


def period_start(moment: datetime, period: str) -> datetime:
    """The start of the ``period`` (``"hour"``, ``"day"``, ``"week"`` or ``"month"``)
    containing ``moment``, in UTC: on the hour, at midnight, on Monday at midnight (ISO
    8601 weeks) or at midnight on the first. Any other word is taken as ``"month"``.

    The one calendar of the core: collection windows (:mod:`.windows`) and timestamp
    coarsening (:mod:`.coarsening`) both start their periods here.
    """
    moment = moment.astimezone(UTC)
    if period == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)
