"""Scope: which fields of a batch are sent, how coarsely, with what noise, as records or aggregates.

What each coarsening level does to a value is :mod:`.coarsening`; what noise does, :mod:`.noise`.

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
from .noise import epsilon_problem, epsilon_text, noise_domain, noise_in_words
from .preview_text import shown_value

Mode = Literal["records", "aggregate"]
MODES: tuple[Mode, ...] = ("records", "aggregate")

# Sensitivities whose fields a new app's scope leaves out until the person includes them.
STARTS_EXCLUDED: frozenset[str] = frozenset({"identifying", "pseudonymous"})


@dataclass(frozen=True)
class Scope:
    fields: tuple[str, ...]
    coarsen: Mapping[str, str] = field(default_factory=dict)
    mode: Mode = "records"
    # Randomized response per field: its epsilon (rules/noise.py). Empty for most scopes.
    noise: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # One spelling per scope: sorted fields, coarsening and noise, so equal scopes render
        # equal payloads. Coarsening a field that is not sent is refused, not dropped:
        # a typo in a coarsened name must not quietly send that field at full detail.
        object.__setattr__(self, "fields", tuple(sorted(set(self.fields))))
        stray = sorted(set(self.coarsen) - set(self.fields))
        if stray:
            raise ScopeError(f"'{stray[0]}' is excluded, so it cannot be coarsened; include it or drop the coarsening")
        object.__setattr__(self, "coarsen", {k: self.coarsen[k] for k in sorted(self.coarsen)})
        stray = sorted(set(self.noise) - set(self.fields))
        if stray:
            raise ScopeError(f"'{stray[0]}' is excluded, so it cannot carry noise; include it or drop the noise")
        for name, epsilon in self.noise.items():
            problem = epsilon_problem(epsilon)
            if problem is not None:
                raise ScopeError(f"the noise of '{name}': {_shown_epsilon(epsilon)} {problem}")
        object.__setattr__(self, "noise", {k: float(self.noise[k]) for k in sorted(self.noise)})

    def to_obj(self) -> dict[str, object]:
        obj: dict[str, object] = {"fields": list(self.fields), "coarsen": dict(self.coarsen), "mode": self.mode}
        # Only when there is some: every scope without noise keeps the spelling (and so the
        # payloads, digests and saved scopes) it had before noise existed.
        if self.noise:
            obj["noise"] = dict(self.noise)
        return obj

    @classmethod
    def from_obj(cls, obj: object) -> Scope:
        if not isinstance(obj, Mapping):
            raise ScopeError("a scope must be an object with fields, coarsen and mode")
        fields = obj.get("fields")
        coarsen = obj.get("coarsen", {})
        mode = obj.get("mode", "records")
        noise = obj.get("noise", {})
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ScopeError("scope 'fields' must be a list of field names")
        if not isinstance(coarsen, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in coarsen.items()
        ):
            raise ScopeError("scope 'coarsen' must map field names to levels")
        if mode not in MODES:
            raise ScopeError(f"scope 'mode' must be one of {', '.join(MODES)}")
        if not isinstance(noise, Mapping) or not all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool) for k, v in noise.items()
        ):
            raise ScopeError("scope 'noise' must map field names to epsilons")
        return cls(tuple(fields), dict(coarsen), cast(Mode, mode), dict(noise))

    def edited(
        self,
        manifest: Manifest,
        *,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        coarsen: Mapping[str, str] | None = None,
        mode: Mode | None = None,
        noise: Mapping[str, float | None] | None = None,
    ) -> Scope:
        """This scope with fields included or excluded, coarsening set, noise added
        (``{field: epsilon}``) or removed (``{field: None}``), or the mode changed. Every name
        must be a field of ``manifest``: excluding a misspelt name would otherwise change
        nothing and send the field the person meant to cut. Excluding a field drops its noise."""
        include, exclude, coarsen = tuple(include), tuple(exclude), dict(coarsen or {})
        noise = dict(noise or {})
        for name in (*include, *exclude, *coarsen, *noise):
            if manifest.field(name) is None:
                raise ScopeError(_not_a_field(name, manifest))
        fields = (set(self.fields) | set(include)) - set(exclude)
        kept = {name: level for name, level in self.coarsen.items() if name in fields}
        noisy = {name: epsilon for name, epsilon in self.noise.items() if name in fields}
        for name, epsilon in noise.items():
            _check_noise(name, epsilon, manifest)
            if epsilon is None:
                noisy.pop(name, None)
            elif name not in fields:
                raise ScopeError(f"'{name}' is excluded, so it cannot carry noise; include it too")
            else:
                noisy[name] = epsilon
        # A field newly included starts at the coarsening its manifest asks for, as it
        # would in a new app's first scope; the same edit may name another level.
        asked = {
            name: spec.coarsen
            for name in include
            if name in fields and name not in self.fields and (spec := manifest.field(name)) and spec.coarsen
        }
        chosen = Scope(tuple(fields), {**kept, **asked, **coarsen}, mode or self.mode, noisy)
        return check_scope(chosen, manifest)

    def excluding(self, names: Iterable[str]) -> Scope:
        drop = set(names)
        fields = tuple(f for f in self.fields if f not in drop)
        coarsen = {k: v for k, v in self.coarsen.items() if k in fields}
        return Scope(fields, coarsen, self.mode, {k: v for k, v in self.noise.items() if k in fields})


def default_scope(manifest: Manifest) -> Scope:
    """What a new app starts with: every field but identifying and pseudonymous ones (a
    stable id links every batch of an install), at the coarsening the manifest asks for,
    as records."""
    included = [spec for spec in manifest.fields if spec.sensitivity not in STARTS_EXCLUDED]
    coarsen = {spec.name: spec.coarsen for spec in included if spec.coarsen}
    return Scope(tuple(spec.name for spec in included), coarsen, "records")


def check_scope(scope: Scope, manifest: Manifest) -> Scope:
    """Refuse a scope that names undeclared fields, impossible coarsening or noise the
    manifest does not offer."""
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
    for name, epsilon in scope.noise.items():
        _check_noise(name, epsilon, manifest)
    return scope


def _check_noise(name: str, epsilon: object, manifest: Manifest) -> None:
    """Noise on ``name`` at ``epsilon`` (None: none), as ``manifest`` offers it: on a field
    that offers it, and at most the epsilon offered. A smaller epsilon is more noise, which
    the person may always choose; a larger one would be less noise than the vendor itself
    offers, and would let a scope that must carry noise (a fleet's require_noise) carry
    almost none. To send the true values, remove the noise instead."""
    spec = manifest.field(name)
    assert spec is not None  # the caller checked the name
    if spec.noise is None:
        offering = [f"{s.name} (up to {epsilon_text(s.noise)})" for s in manifest.fields if s.noise is not None]
        there = f"fields that offer it: {', '.join(offering)}" if offering else f"none of {manifest.name}'s fields do"
        raise ScopeError(f"{manifest.name} offers no noise for '{name}'; {there}")
    if epsilon is None:
        return
    problem = epsilon_problem(epsilon)
    if problem is not None:
        raise ScopeError(f"the noise of '{name}': {_shown_epsilon(epsilon)} {problem}")
    assert isinstance(epsilon, int | float)
    if epsilon > spec.noise:
        raise ScopeError(
            f"{manifest.name} offers noise for '{name}' at an epsilon of at most {epsilon_text(spec.noise)} "
            f"(a smaller epsilon is more noise), not {epsilon_text(epsilon)}"
        )


def _shown_epsilon(value: object) -> str:
    """An epsilon given by someone, as an error quotes it."""
    return epsilon_text(value) if isinstance(value, float) else shown_value(value, 40)


def fit_scope(scope: Scope, manifest: Manifest, today: date) -> Scope:
    """Fit a saved scope to a manifest: keep what still applies, drop the rest, leave
    out fields past their ``expires`` day, and keep noise within what is offered."""
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
    # Noise is fitted too, never dropped while its field is sent: an offer lowered below
    # the chosen epsilon lowers it (more noise, never less), and a field whose noise is no
    # longer offered is left out rather than sent with its true values.
    noise: dict[str, float] = {}
    for name, epsilon in scope.noise.items():
        spec = manifest.field(name)
        if name not in fields or spec is None:
            continue
        if spec.noise is None:
            fields.remove(name)
            coarsen.pop(name, None)
        else:
            noise[name] = min(epsilon, spec.noise)
    return Scope(tuple(fields), coarsen, scope.mode, noise)


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


def _noise_words(name: str, epsilon: float) -> str:
    return f"{name} with noise (ε={epsilon_text(epsilon)})"


def scope_in_words(scope: Scope, manifest: Manifest) -> str:
    """A scope in a few words: ``5 of 8 fields, ts by day, gpu with noise (ε=1), aggregate``."""
    parts = [f"{len(scope.fields)} of {len(manifest.fields)} fields"]
    parts += [_level_words(name, level) for name, level in scope.coarsen.items()]
    parts += [_noise_words(name, epsilon) for name, epsilon in scope.noise.items()]
    parts.append(scope.mode)
    return ", ".join(parts)


def _sent_words(scope: Scope, name: str) -> str:
    if name in scope.coarsen:
        return f"{name} ({scope.coarsen[name]})"
    if name in scope.noise:
        return f"{name} (noise, ε={epsilon_text(scope.noise[name])})"
    return name


def scope_details(scope: Scope, manifest: Manifest) -> str:
    """A scope field by field, in three lines: what is sent, what is not, and as what."""
    sent = [_sent_words(scope, name) for name in scope.fields]
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
    (``[----]`` for a field left out); a field with noise is followed by a line that says
    what the noise does (``  noise: about 27% of these answers are replaced …``)."""
    lines = []
    for spec in manifest.fields:
        state = "send" if spec.name in scope.fields else "----"
        level = scope.coarsen.get(spec.name)
        epsilon = scope.noise.get(spec.name)
        extra = f", coarsened to {level}" if level else ""
        if epsilon is not None:
            extra += f", with noise at ε={epsilon_text(epsilon)}"
        elif spec.noise is not None:
            extra += f", noise offered up to ε={epsilon_text(spec.noise)}"
        lines.append(f"[{state}] {spec.name} ({spec.type}, {spec.sensitivity}{extra}): {spec.description}")
        if epsilon is not None:
            lines.append(f"  noise: {noise_in_words(epsilon, len(noise_domain(spec)))}")
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
    if scope.noise:
        text += "; " + ", ".join(_noise_words(name, epsilon) for name, epsilon in scope.noise.items())
    return text


def _not_a_field(name: str, manifest: Manifest) -> str:
    return f"'{name}' is not a field of {manifest.name}; its fields are {', '.join(manifest.field_names)}"
