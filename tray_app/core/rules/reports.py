"""Checking reports against their app's manifest, at ingest.

A report is a flat JSON object of declared fields. Undeclared and expired fields are
dropped (and named, so the drop can be shown); a report with a wrong type or a
missing required field is rejected with a reason; values are normalised so that
the preview, the stored data and the payload agree (timestamps in UTC with ``Z``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from .clock import from_iso, to_iso
from .manifest import FieldSpec, Manifest
from .preview_text import shown_value

JSONScalar = str | int | float | bool
Report = dict[str, JSONScalar]

MAX_STRING = 4096
MAX_DROPPED_NAMES = 100
_SHOWN = 40  # the longest a value is quoted in a problem (shown_value)
# ASCII digits only (\d takes any script's, "٣.١" would count apart from "3.1"), and \Z:
# "$" would let a version end in a newline.
_VERSION = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,9}){0,3}([-+][0-9A-Za-z.+-]{1,64})?\Z")
_INT_LIMIT = 2**63
_EXACT_FLOAT = 2**53
_SURROGATES = re.compile("[\ud800-\udfff]")
# The stored spelling (see clock.to_iso): a fraction only when it is not zero.
_CANONICAL_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.(?!000000)\d{6})?Z$")
_LEADING_ZERO = re.compile(r"(^|\.)0[0-9]")


@dataclass
class ReportCheck:
    """The outcome of checking a list of reports: what is kept, refused and dropped."""

    accepted: list[Report] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_fields(self) -> list[str]:
        return sorted(self.dropped)


def check_reports(manifest: Manifest, reports: Sequence[object], today: date) -> ReportCheck:
    specs = {spec.name: spec for spec in manifest.fields if not spec.expired(today)}
    fast = {name: _fast_check(spec) for name, spec in specs.items()}
    required = [spec.name for spec in specs.values() if spec.required]
    result = ReportCheck()
    cleaned: dict[str, str] = {}  # an SDK drops the same few names from every report
    for index, raw in enumerate(reports):
        if type(raw) is not dict and not isinstance(raw, Mapping):
            result.rejected.append((index, "a report must be a JSON object of field names and values"))
            continue
        report: Report = {}
        dropped: list[str] = []
        problem = None
        for name, value in raw.items():
            accept = fast.get(name) if type(name) is str else None
            if accept is None:
                dropped.append(name if type(name) is str else shown_value(name, _SHOWN))
            elif accept(value):
                report[name] = value
            else:
                checked = check_value(specs[name], value)
                if isinstance(checked, _Problem):
                    problem = f"field '{name}': {checked.text}"
                    break
                report[name] = checked
        if problem is None:
            for name in required:
                if name not in report:
                    problem = f"required field '{name}' is missing"
                    break
            else:
                if not report:
                    problem = "it has none of the fields the manifest declares"
        if problem is not None:
            result.rejected.append((index, problem))
        else:
            result.accepted.append(report)
            for name in dropped:
                clean = cleaned.get(name)
                if clean is None:
                    clean = cleaned[name] = _bounded_name(name)
                if clean in result.dropped or len(result.dropped) < MAX_DROPPED_NAMES:
                    result.dropped[clean] = result.dropped.get(clean, 0) + 1
    return result


def _fast_check(spec: FieldSpec) -> Callable[[object], bool]:
    """A quick test that ``value`` is already valid and in its stored spelling.

    It may say no to a valid value; :func:`check_value` then decides (and normalises
    or explains). It never says yes to a value ``check_value`` would change or refuse.
    """
    kind = spec.type
    if kind == "boolean":
        return lambda v: type(v) is bool
    if kind == "integer":
        return lambda v: type(v) is int and -_INT_LIMIT <= v < _INT_LIMIT
    if kind == "number":
        return lambda v: (
            (type(v) is int and -_INT_LIMIT <= v < _INT_LIMIT)
            or (type(v) is float and math.isfinite(v) and not v.is_integer() and abs(v) < _INT_LIMIT)
        )
    if kind == "enum":
        allowed = frozenset(spec.values)
        return lambda v: type(v) is str and v in allowed
    if kind == "string":
        return lambda v: type(v) is str and len(v) <= MAX_STRING and v.isascii()
    if kind == "version":
        return lambda v: (
            type(v) is str and len(v) <= MAX_STRING and _VERSION.match(v) is not None and not _LEADING_ZERO.search(v)
        )
    # timestamp: canonical text still needs a calendar check, which check_value does.
    return lambda v: False


def _bounded_name(name: str) -> str:
    """A dropped name as the review may show it: names come from the app, so they are kept
    short (and their number bounded by the caller) so a hostile app cannot flood the review,
    and what is not printable (controls, bidi, lone surrogates) is shown as "?"."""
    name = name[:64]
    if name.isprintable():  # surrogates are not printable either
        return name
    return "".join(ch if ch.isprintable() and not _SURROGATES.match(ch) else "?" for ch in name)


@dataclass(frozen=True)
class _Problem:
    text: str


def check_value(spec: FieldSpec, value: object) -> JSONScalar | _Problem:
    """The normalised value, or a :class:`_Problem` saying what is wrong with it."""
    kind = spec.type
    if value is None:
        return _Problem(f"null is not a {kind}; leave the field out instead")
    if kind == "boolean":
        return value if isinstance(value, bool) else _Problem(f"{shown_value(value, _SHOWN)} is not true or false")
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return _Problem(f"{shown_value(value, _SHOWN)} is not an integer")
        return value if -_INT_LIMIT <= value < _INT_LIMIT else _Problem("the integer is out of range")
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return _Problem(f"{shown_value(value, _SHOWN)} is not a number")
        if isinstance(value, float) and not math.isfinite(value):
            return _Problem("the number is not finite")
        if not -_INT_LIMIT <= value < _INT_LIMIT:  # the integer range, as the fast check has it
            return _Problem("the number is out of range")
        # 2.0 and 2 are one value: store one spelling so counts and previews agree.
        if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_FLOAT:
            return int(value)
        return value
    if not isinstance(value, str):
        return _Problem(f"{shown_value(value, _SHOWN)} is not a string")
    if len(value) > MAX_STRING:
        return _Problem(f"the string is {len(value)} characters; at most {MAX_STRING} are allowed")
    if not value.isascii() and _SURROGATES.search(value):
        return _Problem("the string contains an unpaired surrogate (invalid Unicode)")
    if kind == "enum" and value not in spec.values:
        return _Problem(f"{shown_value(value, _SHOWN)} is not one of the declared values")
    if kind == "version":
        if not _VERSION.match(value):
            return _Problem(f"{shown_value(value, _SHOWN)} is not a version like 3.1.4")
        return _normal_version(value)
    if kind == "timestamp":
        try:
            if _CANONICAL_TS.match(value):
                datetime.fromisoformat(value)  # still checks the calendar (no month 13)
                return value
            return to_iso(from_iso(value))
        except (ValueError, OverflowError):
            shown = shown_value(value, _SHOWN)
            return _Problem(f"{shown} is not an ISO 8601 timestamp with a zone (like 2026-11-24T10:00:00Z)")
    return value


def _normal_version(value: str) -> str:
    """``01.02.0`` → ``1.2.0``: one spelling per version, so counts agree."""
    if not _LEADING_ZERO.search(value):
        return value
    cut = len(value)
    for mark in "-+":
        at = value.find(mark)
        if at != -1:
            cut = min(cut, at)
    core = ".".join(str(int(part)) for part in value[:cut].split("."))
    return core + value[cut:]
