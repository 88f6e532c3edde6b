"""Times as a person reads them: in their own time zone. The core and the wire keep UTC
(ISO 8601 text, ``2026-11-24T13:05:09Z``); every window shows local time through these."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..core import from_iso

__all__ = ["clock_words", "local", "local_time", "span_words", "when_words", "window_words"]


def local(at: str) -> datetime:
    """The UTC time ``at`` in the local time zone (ValueError if it is no ISO 8601 time)."""
    return from_iso(at).astimezone()


def local_time(at: str) -> str:
    """A UTC time as the person's local time, to the second (``at`` itself if unreadable)."""
    try:
        return local(at).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return at


def when_words(at: str) -> str:
    """Local time, with the UTC time when the two differ."""
    try:
        moment = from_iso(at)
    except ValueError:
        return at
    here = moment.astimezone()
    text = here.strftime("%Y-%m-%d %H:%M:%S")
    if here.utcoffset() == moment.utcoffset():
        return f"{text} UTC"
    return f"{text} local time ({at})"


def clock_words(at: str, now: datetime | None = None) -> str:
    """When ``at`` is, in local time, as briefly as it reads unambiguously: ``14:00`` today,
    ``tomorrow 00:00``, else ``2026-11-30 00:00``. ``now``: the clock to compare with."""
    try:
        here = local(at)
    except ValueError:
        return at
    today = (now or datetime.now().astimezone()).astimezone().date()
    if here.date() == today:
        return here.strftime("%H:%M")
    if here.date() == today + timedelta(days=1):
        return here.strftime("tomorrow %H:%M")
    return here.strftime("%Y-%m-%d %H:%M")


def span_words(seconds: float) -> str:
    """A stretch of time, roughly: ``less than a minute``, ``12 min``, ``3 h 20 min``, ``2 days``."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "less than a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{round(hours / 24)} days"


def window_words(start: str, end: str) -> str:
    """A collection window in local time: a day (``2026-11-24``) or days (``2026-11-23 to
    2026-11-29``) when it starts and ends at local midnight, else its start and end
    (``2026-11-24 14:00–15:00``, ``2026-11-24 01:00 to 11-25 01:00``: the year once)."""
    try:
        first, last = local(start), local(end)
    except ValueError:
        return f"{start} to {end}"
    midnight = first.time() == last.time() == datetime.min.time()
    if midnight:
        final = (last - timedelta(days=1)).date()
        return str(first.date()) if final == first.date() else f"{first.date()} to {final}"
    if first.date() == last.date():
        return f"{first:%Y-%m-%d %H:%M}–{last:%H:%M}"
    return (
        f"{first:%Y-%m-%d %H:%M} to {last:%m-%d %H:%M}"
        if first.year == last.year
        else f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"
    )
