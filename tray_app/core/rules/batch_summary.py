"""What a scoped batch says about the person: DESIGN.md principle 7, the review's "what this
batch says", and the ``summary`` of ``show --json``.

Per included field: how many distinct values it sends, how many reports have it, and its
most common values with their counts (the bars of the review). In ``aggregate`` mode the
summary is the counts themselves, after ``min_count`` folding (:func:`~.payload.fold`), so
``(other)`` shows as the vendor will see it. Values are in :func:`~.payload.value_key`
spelling, as aggregates spell them: strings as they are, numbers and booleans as their JSON
text (``"42"``, ``"true"``). ``distinct`` counts the values the vendor learns by name, so
``(other)`` is not one of them; ``top`` shows it like any other count.

Then the findings, in plain words, most serious first (the order of :class:`FindingKind`):

* **identifying**: an included identifying or pseudonymous field that sends a value by name,
  said with its manifest description;
* **links earlier**: a field with the same value in every report of the batch that has it,
  and that value already sent in an earlier delivered batch of the app whose payload is still
  kept. Only fields where a shared value can single out a person count (:func:`~.sent_values.can_link`):
  identifying and pseudonymous ones, and strings and exact numbers; booleans, enums, versions,
  timestamps and bucketed numbers take values many people share;
* **nearly unique**: a string field with at least :data:`NEARLY_UNIQUE_MIN_REPORTS` reports and
  at least :data:`NEARLY_UNIQUE_SHARE` as many distinct values as reports: free text or an id;
* **active hours**: a timestamp sent to the hour or finer, with the hours of day it shows, in
  the time zone given (the person's: a parameter, so the rule stays pure);
* **folded**: in aggregate mode, what ``(other)`` holds, or that a field is too rare to show;
* **purged earlier**: earlier delivered batches that could not be compared, their payloads
  purged by retention.

:func:`summarize` reads a batch's decoded columns (what the renderer already decoded) and keeps
what it counted per field and coarsening with them, so a scope update recounts only the fields
it changed; :func:`summarize_sent` reads what a stored payload sent (:mod:`.sent_values`).
"""

from __future__ import annotations

import heapq
import weakref
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from itertools import repeat
from operator import itemgetter
from typing import Any

from .clock import from_iso
from .columns import ReportColumns
from .manifest import FieldSpec, FieldType, Manifest, Sensitivity
from .payload import OTHER, fold
from .preview_text import shown_value
from .scope import Mode, Scope
from .sent_values import EarlierValues, SentValues, can_link, match_key

__all__ = [
    "NEARLY_UNIQUE_MIN_REPORTS", "NEARLY_UNIQUE_SHARE", "SHOWN_CHARS", "TOP_VALUES", "Disclosure", "EarlierValues",
    "FieldSummary", "Finding", "FindingKind", "summarize", "summarize_sent", "value_label",
]  # fmt: skip

TOP_VALUES = 5  # the most common values shown per field (the bars)
NEARLY_UNIQUE_SHARE = 0.9  # distinct values per report from which a string field reads as free text or an id
NEARLY_UNIQUE_MIN_REPORTS = 10  # fewer reports than this say nothing about a field being unique
SHOWN_CHARS = 40  # the longest a value is quoted in a finding
_PERSONAL: Mapping[str, int] = {"identifying": 0, "pseudonymous": 1}
_FINE_TIMES = (None, "hour")  # timestamp levels that still show the hour of day


class FindingKind(StrEnum):
    """What stands out in a batch, most serious first (findings are sorted in this order)."""

    IDENTIFYING = "identifying"  # an identifying or pseudonymous field is sent: who you are, or one id for you
    LINKS_EARLIER = "links_earlier"  # one value in every report, already sent before: ties the batches together
    NEARLY_UNIQUE = "nearly_unique"  # nearly as many values as reports: free text or an id
    ACTIVE_HOURS = "active_hours"  # timestamps fine enough to show the hours of day you were active
    FOLDED = "folded"  # aggregate mode: rare values counted together as (other), or a field too rare to send
    PURGED_EARLIER = "purged_earlier"  # earlier batches retention purged: not compared, they may share values


_KIND_ORDER: Mapping[FindingKind, int] = {kind: i for i, kind in enumerate(FindingKind)}


@dataclass(frozen=True)
class FieldSummary:
    """One included field as the scoped batch sends it."""

    name: str
    type: FieldType
    sensitivity: Sensitivity
    distinct: int  # values the vendor learns by name ((other) is not one)
    reports: int  # reports that have the field (the sum of its counts)
    top: tuple[tuple[str, int], ...]  # most common first, ties by value; at most TOP_VALUES
    other: int  # reports whose value is not in ``top``
    noise: float | None = None  # the scope's randomized-response epsilon for the field, if any


@dataclass(frozen=True)
class Finding:
    field: str | None  # None: the batch as a whole
    kind: FindingKind
    text: str  # plain words, values quoted safely (shown_value)


@dataclass(frozen=True)
class Disclosure:
    """What a scoped batch says: its fields (identifying and pseudonymous ones and stable ids
    first, then the rest in scope order) and findings (most serious first)."""

    fields: tuple[FieldSummary, ...]
    findings: tuple[Finding, ...]
    linkable_by: tuple[str, ...]  # fields whose value ties this batch to earlier ones, in field order
    reports: int
    mode: Mode
    compared_batches: int  # earlier delivered batches compared with
    purged_batches: int  # earlier delivered batches not compared: payload purged

    def field(self, name: str) -> FieldSummary | None:
        return next((summary for summary in self.fields if summary.name == name), None)

    def to_obj(self) -> dict[str, Any]:
        """DESIGN.md's ``summary`` of ``show --json``, exactly."""
        return {
            "fields": {
                f.name: {"distinct": f.distinct, "top": [[value, n] for value, n in f.top]} for f in self.fields
            },
            "linkable_by": list(self.linkable_by),
        }


def value_label(kind: str, value: str, *, mode: Mode, limit: int = SHOWN_CHARS) -> str:
    """A sent value (value_key spelling) as a person reads it: text quoted and escaped
    (:func:`~.preview_text.shown_value`), numbers and booleans bare, ``(other)`` of counts bare."""
    if (mode == "aggregate" and value == OTHER) or kind in ("integer", "number", "boolean"):
        return value if len(value) <= limit else value[: limit - 3] + "..."
    return shown_value(value, limit)


# -- summarising ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a field's sent counts come to, the part that costs (kept per field and level)."""

    distinct: int
    reports: int
    top: tuple[tuple[str, int], ...]
    single: str | None  # the one value every report that has the field sends, if there is one
    other_bucket: int  # aggregate mode: the count sent as (other)
    joined: bool  # aggregate mode: values seen min_count times or more were folded too
    emptied: bool  # aggregate mode: reports have the field, but fewer than min_count: nothing sent
    hours: tuple[tuple[int, ...], str] | None = None  # hours of day and the zone's name, when asked


_Way = tuple[str, str | None, float | None]  # a field, its coarsening level and its noise's epsilon
_ShapeKey = tuple[str, str | None, float | None, str, int]  # ... and the mode and min_count


class _Memo:
    """What :func:`summarize` counted for one columns object, by field, coarsening and noise
    (and mode, min_count and zone where they matter). Columns never change once built, so
    neither do these. Threads may race to fill one key: they compute the same value."""

    __slots__ = ("__weakref__", "counts", "hours", "shapes")

    def __init__(self) -> None:
        self.counts: dict[_Way, Counter[str]] = {}
        self.shapes: dict[_ShapeKey, _Shape] = {}
        self.hours: dict[tuple[str, str | None, float | None, str, int, tzinfo], tuple[tuple[int, ...], str]] = {}


# Kept as long as the columns are (the broker keeps those of the batch being reviewed).
_MEMOS: weakref.WeakKeyDictionary[ReportColumns, _Memo] = weakref.WeakKeyDictionary()


def summarize(
    columns: ReportColumns, manifest: Manifest, scope: Scope, earlier: EarlierValues, *, zone: tzinfo = UTC
) -> Disclosure:
    """What ``scope`` sends of the batch in ``columns``, compared with ``earlier``."""
    memo = _MEMOS.get(columns)
    if memo is None:
        memo = _MEMOS.setdefault(columns, _Memo())
    aggregate = scope.mode == "aggregate"
    shapes: dict[str, _Shape] = {}
    for name in scope.fields:
        # A field's noise is drawn once per batch, field and epsilon (the columns keep it), so
        # its counts are as fixed as those without noise.
        way = (name, scope.coarsen.get(name), scope.noise.get(name))
        key = (*way, scope.mode, manifest.min_count)
        shape = memo.shapes.get(key)
        sent: Mapping[str, int] | None = None
        if shape is None:
            counts = memo.counts.get(way)
            if counts is None:
                counts = memo.counts[way] = columns.value_counts(name, scope)
            sent = fold(counts, manifest.min_count) if aggregate else counts
            shape = memo.shapes[key] = _shape(sent, counts if aggregate else None, scope.mode, manifest.min_count)
        if _shows_hours(manifest.field(name), way[1]):
            hours = memo.hours.get((*key, zone))
            if hours is None:
                if sent is None:  # the shape was kept, so its counts were too
                    counts = memo.counts[way]
                    sent = fold(counts, manifest.min_count) if aggregate else counts
                hours = memo.hours[(*key, zone)] = _hours(_named(sent, scope.mode), zone)
            shape = replace(shape, hours=hours)
        shapes[name] = shape
    return _disclose(shapes, columns.count, manifest, scope, earlier)


def summarize_sent(
    sent: SentValues,
    manifest: Manifest,
    scope: Scope,
    earlier: EarlierValues,
    *,
    reports: int | None = None,
    zone: tzinfo = UTC,
) -> Disclosure:
    """What a stored payload sent (:func:`~.sent_values.sent_values`) under the ``scope`` it
    was approved with, compared with the batches delivered before it. ``reports``: how many
    the batch held (a payload of counts does not say; records default to their number)."""
    shapes: dict[str, _Shape] = {}
    for name in scope.fields:
        counts = sent.counts.get(name, {})
        shape = _shape(counts, None, sent.mode, manifest.min_count)
        if sent.mode == "aggregate" and name in sent.counts and not counts:
            shape = replace(shape, emptied=True)  # sent as an empty object: too rare to show
        if _shows_hours(manifest.field(name), scope.coarsen.get(name)):
            shape = replace(shape, hours=_hours(_named(counts, sent.mode), zone))
        shapes[name] = shape
    total = reports if reports is not None else sent.records or 0
    shown = scope if scope.mode == sent.mode else replace(scope, mode=sent.mode)  # the bytes say what was sent
    return _disclose(shapes, total, manifest, shown, earlier)


def _named(counts: Mapping[str, int], mode: Mode) -> Iterable[str]:
    return (v for v in counts if v != OTHER) if mode == "aggregate" else counts.keys()


def _shows_hours(spec: FieldSpec | None, level: str | None) -> bool:
    return spec is not None and spec.type == "timestamp" and level in _FINE_TIMES


def _shape(counts: Mapping[str, int], raw: Mapping[str, int] | None, mode: Mode, min_count: int) -> _Shape:
    """``counts`` as sent (folded in aggregate mode; ``raw``: before folding, if known)."""
    aggregate = mode == "aggregate"
    other_bucket = counts.get(OTHER, 0) if aggregate else 0
    distinct = len(counts) - (1 if aggregate and OTHER in counts else 0)
    reports = sum(counts.values())
    top = _top(counts, TOP_VALUES)
    single = top[0][0] if distinct == 1 and len(counts) == 1 else None
    joined = emptied = False
    if raw is not None:
        if other_bucket:
            joined = any(n >= min_count and v != OTHER and v not in counts for v, n in raw.items())
        emptied = not counts and bool(raw)
    return _Shape(distinct, reports, top, single, other_bucket, joined, emptied)


def _top(counts: Mapping[str, int], k: int) -> tuple[tuple[str, int], ...]:
    """The ``k`` most common values, ties by value (code point order), without sorting them all:
    a column of timestamps to the second has nearly as many values as reports."""
    if len(counts) <= k:
        return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    cut = heapq.nlargest(k, counts.values())[-1]
    above = sorted(((v, n) for v, n in counts.items() if n > cut), key=lambda item: (-item[1], item[0]))
    at_cut = heapq.nsmallest(k - len(above), [v for v, n in counts.items() if n == cut])
    return (*above, *((v, cut) for v in at_cut))


def _hours(values: Iterable[str], zone: tzinfo) -> tuple[tuple[int, ...], str]:
    """The hours of day (in ``zone``) that timestamps fall in, and the zone's name.

    Stored timestamps are canonical UTC text (``2026-11-24T13:05:09Z``), read to the minute
    (zones may be off UTC by a part of an hour), one parse per minute: a column to the second
    has nearly as many values as reports. Anything else is parsed whole, or shows no hour."""
    texts = list(values)
    utc = [v for v in texts if v[-1:] == "Z"] if sum(map(str.endswith, texts, repeat("Z"))) < len(texts) else texts
    moments: list[datetime] = []
    for minute in set(map(itemgetter(slice(0, 16)), utc)):
        try:
            moments.append(datetime.fromisoformat(minute + ":00+00:00"))
        except ValueError:
            continue  # not a timestamp (a report of an older manifest): it shows no hour
    for value in texts if utc is not texts else ():
        if value[-1:] != "Z":
            try:
                moments.append(from_iso(value))
            except ValueError:
                continue
    if not moments:
        return (), ""
    local = []
    for moment in moments:
        try:
            local.append(moment.astimezone(zone))
        except (OverflowError, ValueError):  # 9999-12-31T23:59Z east of UTC: past the calendar's end
            continue
    if not local:
        return (), ""
    name = min(local).tzname() or "local"
    return tuple(sorted({moment.hour for moment in local})), name


def _disclose(
    shapes: Mapping[str, _Shape], reports: int, manifest: Manifest, scope: Scope, earlier: EarlierValues
) -> Disclosure:
    mode = scope.mode
    summaries: list[tuple[int, FieldSummary]] = []
    linkable: set[str] = set()
    for position, name in enumerate(scope.fields):
        shape = shapes[name]
        spec = manifest.field(name)
        kind: FieldType = spec.type if spec is not None else "string"
        sensitivity: Sensitivity = spec.sensitivity if spec is not None else "anonymous"
        single = shape.single
        if single is not None and can_link(spec, scope.coarsen.get(name)) and _sent_before(earlier, name, kind, single):
            linkable.add(name)
        other = shape.reports - sum(n for _, n in shape.top)
        summary = FieldSummary(
            name, kind, sensitivity, shape.distinct, shape.reports, shape.top, other, scope.noise.get(name)
        )
        rank = _PERSONAL.get(sensitivity, 2 if name in linkable else 3)
        summaries.append((rank * len(scope.fields) + position, summary))
    fields = tuple(summary for _, summary in sorted(summaries, key=lambda item: item[0]))
    findings: list[Finding] = []
    for summary in fields:
        findings += _findings(summary, shapes[summary.name], manifest, scope, earlier, summary.name in linkable)
    if earlier.purged:
        findings.append(Finding(None, FindingKind.PURGED_EARLIER, _purged_text(earlier.purged)))
    findings.sort(key=lambda finding: _KIND_ORDER[finding.kind])  # stable: field order within a kind
    return Disclosure(
        fields=fields,
        findings=tuple(findings),
        linkable_by=tuple(f.name for f in fields if f.name in linkable),
        reports=reports,
        mode=mode,
        compared_batches=earlier.compared,
        purged_batches=earlier.purged,
    )


def _sent_before(earlier: EarlierValues, name: str, kind: str, value: str) -> int:
    """How many of the earlier batches sent ``value`` of ``name``."""
    return earlier.values.get(name, {}).get(match_key(kind, value), 0)


# -- findings in words --------------------------------------------------------------------


def _findings(
    field: FieldSummary, shape: _Shape, manifest: Manifest, scope: Scope, earlier: EarlierValues, links: bool
) -> list[Finding]:
    name, mode, found = field.name, scope.mode, []
    spec = manifest.field(name)
    if field.sensitivity in _PERSONAL and field.distinct and spec is not None:
        found.append(Finding(name, FindingKind.IDENTIFYING, _identifying_text(spec, manifest)))
    if links and shape.single is not None:
        batches = _sent_before(earlier, name, field.type, shape.single)
        shown = value_label(field.type, shape.single, mode=mode)
        # An id or a name is yours alone; another string or number may be shared by many.
        unless = "" if field.sensitivity in _PERSONAL else "unless many others send the same, "
        text = (
            f"{name} is {shown} in every report that has it, and that value was sent before: "
            f"{unless}it links this batch to {_earlier_words(batches, earlier.compared)}."
        )
        found.append(Finding(name, FindingKind.LINKS_EARLIER, text))
    if (
        field.type == "string"
        and field.reports >= NEARLY_UNIQUE_MIN_REPORTS
        and field.distinct >= NEARLY_UNIQUE_SHARE * field.reports
    ):
        text = (
            f"{name} has {field.distinct:,} different values in {field.reports:,} reports: "
            "it may be free text or an id."
        )
        found.append(Finding(name, FindingKind.NEARLY_UNIQUE, text))
    if shape.hours is not None and shape.hours[0]:
        hours, zone_name = shape.hours
        text = (
            f"{name} is precise enough to show the hours you were active: {_hour_spans(hours)} "
            f"({zone_name} time). Coarsened to the day, it would not show them."
        )
        found.append(Finding(name, FindingKind.ACTIVE_HOURS, text))
    if mode == "aggregate":
        m = manifest.min_count
        if shape.emptied:
            text = f"{name} is in fewer than {m} reports, so none of its counts is sent."
            found.append(Finding(name, FindingKind.FOLDED, text))
        elif shape.other_bucket:
            also = f", and the least common others needed to make it {m} or more," if shape.joined else ""
            text = (
                f"{name}: values seen fewer than {m} times{also} are counted together as {OTHER} "
                f"({shape.other_bucket:,} reports), so no count below {m} is sent."
            )
            found.append(Finding(name, FindingKind.FOLDED, text))
    return found


def _identifying_text(spec: FieldSpec, manifest: Manifest) -> str:
    about = spec.description.rstrip(". ")
    if spec.sensitivity == "identifying":
        return f"{spec.name} is marked identifying: {about}. Sent, it tells {manifest.vendor} who you are."
    return (
        f"{spec.name} is marked pseudonymous: {about}. Sent, it lets {manifest.vendor} tie your reports "
        "together, in this batch and the next ones."
    )


def _earlier_words(batches: int, compared: int) -> str:
    if batches >= compared:
        return "the one you sent before" if batches == 1 else f"the {batches} you sent before"
    return f"{batches} of the {compared} you sent before"


def _purged_text(purged: int) -> str:
    if purged == 1:
        return (
            "1 earlier batch you sent is no longer kept here (retention purged it), so this batch could not be "
            "compared with it: they may share values."
        )
    return (
        f"{purged} earlier batches you sent are no longer kept here (retention purged them), so this batch "
        "could not be compared with them: they may share values."
    )


def _hour_spans(hours: tuple[int, ...]) -> str:
    """``(8, 9, 10, 22)`` → ``between 08:00-11:00 and 22:00-23:00``."""
    if len(hours) == 24:
        return "at every hour of the day"
    runs: list[list[int]] = []
    for hour in hours:
        if runs and runs[-1][1] == hour - 1:
            runs[-1][1] = hour
        else:
            runs.append([hour, hour])
    if len(runs) > 1 and runs[0][0] == 0 and runs[-1][1] == 23:  # across midnight
        runs[-1][1] = runs.pop(0)[1]  # said last, from its evening start
    spans = [f"{start:02d}:00-{(end + 1) % 24:02d}:00" for start, end in runs]
    return "between " + (spans[0] if len(spans) == 1 else ", ".join(spans[:-1]) + " and " + spans[-1])
