"""Coarsening in words: the range a bucketed number stands for, what each level does, and
what ``(other)`` counts. Pure text for the shells; the rules themselves are in
:mod:`.coarsening` (levels, buckets) and :mod:`.payload` (``min_count`` folding).

A bucketed number is sent as the lower bound of its power-of-two bucket (``1500`` is sent
as ``1024``); a person reads that as the range it stands for, ``1024–2047``.
"""

from __future__ import annotations

__all__ = ["LEVEL_WORDS", "bucket_bounds", "bucket_words", "level_words", "other_words"]

# What each coarsening level sends of a value, in words that follow "sent as" (DESIGN.md, "Manifest").
LEVEL_WORDS: dict[str, str] = {
    "exact": "it is",
    "hour": "the start of its hour, in UTC (10:47:12 becomes 10:00:00)",
    "day": "its day only: midnight UTC at the start of that day",
    "week": "its week only: the Monday, at midnight UTC, that starts its (ISO) week, so every time in the "
    "same week is sent as the same Monday",
    "month": "its month only: midnight UTC on the first of that month",
    "major": "its major version only (3.1.4 becomes 3)",
    "minor": "its major.minor version only (3.1.4 becomes 3.1)",
    "bucket": "the lower end of its power-of-two range (1500 becomes 1024, meaning 1024–2047; the ranges "
    "are 0, 1, 2–3, 4–7, 8–15, …)",
}


def level_words(level: str) -> str:
    """What ``level`` sends of a value, in words that follow "sent as" (the level itself when unknown)."""
    return LEVEL_WORDS.get(level, level)


def bucket_bounds(lower: int) -> tuple[int, int]:
    """The half-open range ``[low, high)`` of the values :func:`.coarsening.bucket` sends as
    ``lower``: ``[0, 1)``, ``[1, 2)``, ``[2, 4)``, ``[4, 8)``…, mirrored below 0 (``-1`` is
    ``[-1, 0)``, ``-2`` is ``[-2, -1)``, ``-8`` is ``[-8, -4)``). ``lower`` must be a bucket's
    lower bound (0 or plus or minus a power of two); anything else is refused."""
    if lower == 0:
        return 0, 1
    magnitude = abs(lower)
    if magnitude & (magnitude - 1):
        raise ValueError(f"{lower} is not the lower bound of a power-of-two bucket")
    if lower > 0:
        return lower, 2 * lower
    return (-1, 0) if lower == -1 else (lower, lower // 2)


def bucket_words(lower: int | str, *, integer: bool = True) -> str:
    """The range a bucketed value stands for, as a person reads it: ``"1024–2047"`` for an
    integer field (``"1"`` for a bucket of one integer, ``"-8 to -5"`` below 0), ``"1024 to
    under 2048"`` for a number field. ``lower`` may be an aggregate's key (``"1024"``); a key
    that is no bucket's lower bound (``"(other)"``) is returned as it is."""
    try:
        value = int(lower)
        low, high = bucket_bounds(value)
    except ValueError:
        return str(lower)
    if not integer:
        return f"{low} to under {high}"
    last = high - 1
    if last == low:
        return str(low)
    return f"{low}–{last}" if low >= 0 else f"{low} to {last}"


def other_words(min_count: int) -> str:
    """What ``(other)`` counts in an aggregate, for a manifest's ``min_count``."""
    return (
        f"“(other)” counts together the values seen fewer than {min_count} times in this batch "
        f"(and, if that is still fewer than {min_count}, the next rarest ones), so no rare value is "
        f"sent on its own: every count sent is at least {min_count}. A field seen fewer than "
        f"{min_count} times in all is sent empty."
    )
