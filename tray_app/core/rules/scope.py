"""Scope: which fields of a batch are sent, how coarsely, as records or aggregates.

A scope lists the fields it *includes*; anything not listed is excluded. That makes
the safe thing the default: a field added by a new manifest version, or one the
scope never heard of, is not sent until someone includes it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, cast

from ..errors import ScopeError
from .clock import from_iso, to_iso
from .manifest import Manifest, diff_manifests
from .reports import JSONScalar

Mode = Literal["records", "aggregate"]
MODES: tuple[Mode, ...] = ("records", "aggregate")

# Sensitivities whose fields a new app's scope leaves out until the person includes them.
STARTS_EXCLUDED: frozenset[str] = frozenset({"identifying", "pseudonymous"})


@dataclass(frozen=True)
class Scope:
    fields: tuple[str, ...]
    coarsen: Mapping[str, str] = field(default_factory=dict)
    mode: Mode = "records"

    def __post_init__(self) -> None:
        # One spelling per scope: sorted fields and coarsening, so equal scopes render
        # equal payloads. Coarsening a field that is not sent is refused, not dropped:
        # a typo in a coarsened name must not quietly send that field at full detail.
        object.__setattr__(self, "fields", tuple(sorted(set(self.fields))))
        stray = sorted(set(self.coarsen) - set(self.fields))
        if stray:
            raise ScopeError(f"'{stray[0]}' is excluded, so it cannot be coarsened; include it or drop the coarsening")
        object.__setattr__(self, "coarsen", {k: self.coarsen[k] for k in sorted(self.coarsen)})

    def to_obj(self) -> dict[str, object]:
        return {"fields": list(self.fields), "coarsen": dict(self.coarsen), "mode": self.mode}

    @classmethod
    def from_obj(cls, obj: object) -> Scope:
        if not isinstance(obj, Mapping):
            raise ScopeError("a scope must be an object with fields, coarsen and mode")
        fields = obj.get("fields")
        coarsen = obj.get("coarsen", {})
        mode = obj.get("mode", "records")
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ScopeError("scope 'fields' must be a list of field names")
        if not isinstance(coarsen, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in coarsen.items()
        ):
            raise ScopeError("scope 'coarsen' must map field names to levels")
        if mode not in MODES:
            raise ScopeError(f"scope 'mode' must be one of {', '.join(MODES)}")
        return cls(tuple(fields), dict(coarsen), cast(Mode, mode))

    def edited(
        self,
        manifest: Manifest,
        *,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        coarsen: Mapping[str, str] | None = None,
        mode: Mode | None = None,
    ) -> Scope:
        """This scope with fields included or excluded, coarsening set, or the mode
        changed. Every name must be a field of ``manifest``: excluding a misspelt name
        would otherwise change nothing and send the field the person meant to cut."""
        include, exclude, coarsen = tuple(include), tuple(exclude), dict(coarsen or {})
        for name in (*include, *exclude, *coarsen):
            if manifest.field(name) is None:
                raise ScopeError(_not_a_field(name, manifest))
        fields = (set(self.fields) | set(include)) - set(exclude)
        kept = {name: level for name, level in self.coarsen.items() if name in fields}
        # A field newly included starts at the coarsening its manifest asks for, as it
        # would in a new app's first scope; the same edit may name another level.
        asked = {
            name: spec.coarsen
            for name in include
            if name in fields and name not in self.fields and (spec := manifest.field(name)) and spec.coarsen
        }
        return check_scope(Scope(tuple(fields), {**kept, **asked, **coarsen}, mode or self.mode), manifest)

    def excluding(self, names: Iterable[str]) -> Scope:
        drop = set(names)
        fields = tuple(f for f in self.fields if f not in drop)
        return Scope(fields, {k: v for k, v in self.coarsen.items() if k in fields}, self.mode)


def default_scope(manifest: Manifest) -> Scope:
    """What a new app starts with: every field but identifying and pseudonymous ones (a
    stable id links every batch of an install), at the coarsening the manifest asks for,
    as records."""
    included = [spec for spec in manifest.fields if spec.sensitivity not in STARTS_EXCLUDED]
    coarsen = {spec.name: spec.coarsen for spec in included if spec.coarsen}
    return Scope(tuple(spec.name for spec in included), coarsen, "records")


def check_scope(scope: Scope, manifest: Manifest) -> Scope:
    """Refuse a scope that names undeclared fields or impossible coarsening."""
    for name in scope.fields:
        if manifest.field(name) is None:
            raise ScopeError(_not_a_field(name, manifest))
    for name, level in scope.coarsen.items():
        spec = manifest.field(name)
        assert spec is not None  # coarsen keys are a subset of fields (see __post_init__)
        if not spec.coarsen_levels:
            raise ScopeError(f"'{name}' is a {spec.type} field; it can only be kept or excluded")
        if level not in spec.coarsen_levels:
            raise ScopeError(f"'{level}' is not a coarsening of '{name}'; use one of {', '.join(spec.coarsen_levels)}")
    return scope


def fit_scope(scope: Scope, manifest: Manifest, today: date) -> Scope:
    """Fit a saved scope to a manifest: keep what still applies, drop the rest, and
    leave out fields past their ``expires`` day."""
    fields = []
    for name in scope.fields:
        spec = manifest.field(name)
        if spec is not None and not spec.expired(today):
            fields.append(name)
    coarsen = {}
    for name, level in scope.coarsen.items():
        spec = manifest.field(name)
        if name in fields and spec is not None and level in spec.coarsen_levels:
            coarsen[name] = level
    return Scope(tuple(fields), coarsen, scope.mode)


def carry_scope(scope: Scope, old: Manifest, new: Manifest) -> Scope:
    """The app's scope for a new manifest version: new and changed fields start excluded."""
    change = diff_manifests(old, new)
    kept = scope.excluding((*change.excluded_until_reviewed, *change.removed))
    return fit_scope(kept, new, date.min)


def _not_a_field(name: str, manifest: Manifest) -> str:
    return f"'{name}' is not a field of {manifest.name}; its fields are {', '.join(manifest.field_names)}"


# -- coarsening ----------------------------------------------------------------------


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


def period_start(moment: datetime, level: str) -> datetime:
    moment = moment.astimezone(UTC)
    if level == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if level == "day":
        return day
    if level == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)
