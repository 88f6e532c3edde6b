"""Coarsening: what a scope's coarsening level does to a value (see DESIGN.md for the levels).

Timestamps to the start of their hour, day, week or month (UTC); versions to
``major`` or ``minor``; numbers to the lower bound of their power-of-two bucket. Used
by the reference renderer (:mod:`.payload`) and the fast one (:mod:`.columns`) alike.
"""

from __future__ import annotations

import math
from typing import Any

from .clock import from_iso, period_start, to_iso
from .reports import JSONScalar

# Stored timestamps are canonical UTC text ("2026-11-24T13:05:09Z"), so coarsening one
# to these levels keeps the first characters and writes the rest: (kept, rest).
_TIMESTAMP_CUTS: dict[str, tuple[int, str]] = {
    "hour": (13, ":00:00Z"),
    "day": (10, "T00:00:00Z"),
    "month": (7, "-01T00:00:00Z"),
}


def coarsen_value(kind: str, level: str, value: JSONScalar) -> JSONScalar:
    """Coarsen one (already validated) value; see DESIGN.md for the levels."""
    if kind == "timestamp" and isinstance(value, str):
        cut = _TIMESTAMP_CUTS.get(level)
        if cut is not None and len(value) >= 20 and value[10] == "T" and value[-1] == "Z":
            return value[: cut[0]] + cut[1]
        return to_iso(period_start(from_iso(value), level))
    if kind == "version" and isinstance(value, str):
        core = value.split("-", 1)[0].split("+", 1)[0].split(".")
        return ".".join(core[: 1 if level == "major" else 2])
    if kind in ("integer", "number") and not isinstance(value, bool | str):
        return bucket(value)
    return value


def coarsen_timestamps(level: str, values: list[Any]) -> list[Any]:
    """:func:`coarsen_value` over a column of timestamps, in one pass; cells that are
    not strings (a report without the field) pass through unchanged."""
    cut = _TIMESTAMP_CUTS.get(level)
    if cut is None:
        return [coarsen_value("timestamp", level, v) if type(v) is str else v for v in values]
    kept, rest = cut
    return [
        (v[:kept] + rest if len(v) >= 20 and v[10] == "T" and v[-1] == "Z" else coarsen_value("timestamp", level, v))
        if type(v) is str
        else v
        for v in values
    ]


def bucket(value: int | float) -> int:
    """Lower bound of the power-of-two bucket: 0, 1, 2, 4, 8, ... (and mirrored below 0)."""
    if 0 <= value < 1:
        return 0
    if value >= 1:
        return 1 << (int(value).bit_length() - 1)
    # Negative: the bucket [-2^k, -2^(k-1)) whose lower bound is -2^k, for the
    # smallest power of two 2^k >= |value|.
    magnitude = math.ceil(-value)
    return -1 if magnitude <= 1 else -(1 << (magnitude - 1).bit_length())
