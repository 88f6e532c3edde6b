"""Scope: which fields of a batch are sent, how coarsely, as records or aggregates.

What each coarsening level does to a value is :mod:`.coarsening`.

A scope lists the fields it *includes*; anything not listed is excluded. That makes
the safe thing the default: a field added by a new manifest version, or one the
scope never heard of, is not sent until someone includes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, cast

from ..errors import ScopeError
from .manifest import Manifest, diff_manifests

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


# -- a scope in words (what every shell shows of it) ------------------------------------

MODE_WORDS: dict[str, str] = {"records": "individual records", "aggregate": "one aggregate per batch"}


def _level_words(name: str, level: str) -> str:
    if level == "bucket":
        return f"{name} bucketed"
    if level in ("major", "minor"):
        return f"{name} to {level}"
    return f"{name} by {level}"


def scope_in_words(scope: Scope, manifest: Manifest) -> str:
    """A scope in a few words: ``5 of 8 fields, ts by day, aggregate``."""
    parts = [f"{len(scope.fields)} of {len(manifest.fields)} fields"]
    parts += [_level_words(name, level) for name, level in scope.coarsen.items()]
    parts.append(scope.mode)
    return ", ".join(parts)


def scope_details(scope: Scope, manifest: Manifest) -> str:
    """A scope field by field, in three lines: what is sent, what is not, and as what."""
    sent = [f"{n} ({scope.coarsen[n]})" if n in scope.coarsen else n for n in scope.fields]
    kept = [name for name in manifest.field_names if name not in scope.fields]
    return "\n".join(
        [
            f"Sent: {', '.join(sent) or 'nothing'}",
            f"Not sent: {', '.join(kept) or 'nothing'}",
            f"As: {MODE_WORDS[scope.mode]}",
        ]
    )


def scope_fields_in_words(scope: Scope, manifest: Manifest) -> list[str]:
    """Each declared field, one line: ``[send] ts (timestamp, low, coarsened to day): …``
    (``[----]`` for a field left out), then the mode."""
    lines = []
    for spec in manifest.fields:
        state = "send" if spec.name in scope.fields else "----"
        level = scope.coarsen.get(spec.name)
        extra = f", coarsened to {level}" if level else ""
        lines.append(f"[{state}] {spec.name} ({spec.type}, {spec.sensitivity}{extra}): {spec.description}")
    return lines


def scope_sentence(scope: Scope) -> str:
    """A scope in a sentence, without its manifest (as a receipt keeps it):
    ``Records with a, b; ts coarsened to day``."""
    if not scope.fields:
        return "no fields"
    what = "Counts of values of" if scope.mode == "aggregate" else "Records with"
    text = f"{what} {', '.join(scope.fields)}"
    if scope.coarsen:
        text += "; " + ", ".join(f"{name} coarsened to {level}" for name, level in scope.coarsen.items())
    return text


def _not_a_field(name: str, manifest: Manifest) -> str:
    return f"'{name}' is not a field of {manifest.name}; its fields are {', '.join(manifest.field_names)}"
