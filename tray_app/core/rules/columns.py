"""A batch's reports decoded once into columns, so any scope renders in a fraction of the time.

The review window re-renders a batch every time the person changes its scope, and a
batch can hold 100,000 reports. :func:`tray_app.core.rules.payload.reference_render` (the reference:
one dict per report, then ``json.dumps``) takes about half a second for that; most of
it is decoding the stored reports and building and encoding 100,000 small dicts again.

:class:`ReportColumns` decodes the reports once into one list per field. Rendering a
scope then encodes each *distinct* value of an included field once (with the encoders
``json.dumps`` itself uses), and joins the pieces in C (``zip`` + ``str.join``). The
bytes are exactly those of the reference renderer (DESIGN.md, "Payload sent to the
vendor": canonical JSON, :mod:`.canonical_json`);
a property test compares the two on generated batches and scopes.

Noise (:mod:`.noise`) is drawn for a whole column at once, from the batch's secret seed
given at construction, after coarsening, and kept like every other column: a field's noise
at one epsilon is drawn once however often the scope changes around it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any, Final

from .canonical_json import CANONICAL_ENCODER, canonical_bytes
from .coarsening import coarsen_timestamps, coarsen_value
from .manifest import Manifest
from .noise import NoiseDraw, noise_domain
from .payload import BatchFrame, Payload, envelope, fold, noise_draws, sha256_hex, value_key
from .reports import JSONScalar
from .scope import Scope

__all__ = ["ReportColumns", "encode_report"]


class _Missing:
    """The cell of a field a report does not have."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

# What json.dumps(..., ensure_ascii=False) uses for strings (the C version when built).
_encode_string: Final[Callable[[str], str]] = json.encoder.encode_basestring


def encode_report(report: Mapping[str, Any]) -> str:
    """A checked report as it is stored (compact JSON, keys sorted), what :meth:`ReportColumns.decode` reads."""
    return CANONICAL_ENCODER.encode(report)  # canonical JSON, by the one shared encoder


def _encode(value: JSONScalar) -> str:
    """One scalar exactly as ``json.dumps`` writes it."""
    if type(value) is str:
        return _encode_string(value)
    if type(value) is int:
        return int.__repr__(value)
    return json.dumps(value)  # booleans, floats (and anything else) the slow, sure way


class ReportColumns:
    """The reports of one batch as columns (one list per declared field).

    Built once, then only read (renders may run on several threads). It keeps the
    pieces it has encoded for each field, coarsening and noise, so a second scope that
    shares them costs little more than joining them. ``noise_seed`` is the batch's secret
    (:mod:`.noise`), needed only to render a scope with noise.
    """

    def __init__(
        self, manifest: Manifest, reports: Sequence[dict[str, Any]], *, noise_seed: bytes | None = None
    ) -> None:
        self.count: Final = len(reports)
        self._manifest = manifest
        self._noise_seed = noise_seed
        self._kinds = {spec.name: spec.type for spec in manifest.fields}
        # Stored reports hold declared fields only, and a scope names declared fields only.
        self._columns = {name: _column(reports, name) for name in self._kinds}
        self._coarse: dict[tuple[str, str], list[Any]] = {}
        self._noisy: dict[tuple[str, str | None, float], list[Any]] = {}
        self._pieces: dict[tuple[str, str | None, float | None, bool], list[str]] = {}
        self._gaps: dict[str, list[int]] = {}
        self._one_typed: dict[tuple[str, str | None, float | None], bool] = {}

    def __repr__(self) -> str:  # never the seed
        return f"<ReportColumns of {self.count} reports>"

    @classmethod
    def decode(cls, manifest: Manifest, bodies: Iterable[str], *, noise_seed: bytes | None = None) -> ReportColumns:
        """From stored report bodies (JSON objects): one ``json.loads`` for all of them."""
        reports: list[dict[str, Any]] = json.loads("[" + ",".join(bodies) + "]")
        return cls(manifest, reports, noise_seed=noise_seed)

    def render(self, frame: BatchFrame, manifest: Manifest, scope: Scope) -> Payload:
        """The payload of this batch under ``scope``: the same bytes as :func:`payload.reference_render`."""
        outside = envelope(frame, scope)
        if scope.mode == "aggregate":
            outside["aggregates"] = self.aggregates(scope, manifest.min_count)
            return Payload.of(outside)
        # Keys sort as app_id, batch_id, manifest_version, reports, scope, window: write
        # the envelope around the reports instead of building one dict per report.
        head = canonical_bytes({k: outside[k] for k in ("app_id", "batch_id", "manifest_version")})
        tail = canonical_bytes({k: outside[k] for k in ("scope", "window")})
        body = b"".join((head[:-1], b',"reports":[', self._records(scope), b"],", tail[1:]))
        return Payload(body, sha256_hex(body))

    def aggregates(self, scope: Scope, min_count: int) -> dict[str, dict[str, int]]:
        """The scope's counts per field and value, folded (what :func:`payload.aggregate` gives)."""
        self._check_noise(scope)
        return {name: fold(self._counts(name, *_way(scope, name)), min_count) for name in scope.fields}

    def value_counts(self, name: str, scope: Scope) -> Counter[str]:
        """How often each value of ``name`` is sent under ``scope`` (coarsened, with its
        noise; value_key spelling; reports without the field not counted): what the batch's
        summary shows, counted from exactly the values that are sent."""
        self._check_noise(scope)
        return Counter(self._counts(name, *_way(scope, name)))

    def scoped_records(self, scope: Scope) -> list[dict[str, Any]]:
        """Each report as the scope sends it (what :func:`payload.scoped_records` gives): its
        included fields, coarsened and with their noise, for wire formats that build their own records."""
        self._check_noise(scope)
        names = scope.fields
        columns = [self._values(name, *_way(scope, name)) for name in names]
        return [
            {name: value for name, value in zip(names, row, strict=True) if value is not MISSING}
            for row in zip(*columns, strict=True)
        ] if names else [{} for _ in range(self.count)]  # fmt: skip

    # -- records ------------------------------------------------------------------------

    def _records(self, scope: Scope) -> bytes:
        self._check_noise(scope)
        n, names = self.count, scope.fields
        if not names:
            return ",".join(repeat("{}", n)).encode("utf-8")
        # A piece is '"name":value', or "" when the report lacks the field; pieces after
        # the first start with a comma. Rows that lack the first field are redone below.
        first = self._encoded(names[0], *_way(scope, names[0]), comma=False)
        rest = [self._encoded(name, *_way(scope, name), comma=True) for name in names[1:]]
        records = list(map("".join, zip(repeat("{", n), first, *rest, repeat("}", n), strict=True)))
        gaps = self._gap_rows(names[0])
        if gaps:
            every = [self._encoded(name, *_way(scope, name), comma=True) for name in names]
            for row in gaps:
                records[row] = "{" + "".join(column[row] for column in every)[1:] + "}"
        return ",".join(records).encode("utf-8")

    def _encoded(self, name: str, level: str | None, epsilon: float | None, *, comma: bool) -> list[str]:
        key = (name, level, epsilon, comma)
        pieces = self._pieces.get(key)
        if pieces is None:
            values = self._values(name, level, epsilon)
            prefix = ("," if comma else "") + _encode_string(name) + ":"
            distinct = dict.fromkeys(values)
            distinct.pop(MISSING, None)
            if self._by_value(name, level, epsilon, values, distinct):
                table = {value: prefix + _encode(value) for value in distinct}
                table[MISSING] = ""
                pieces = list(map(table.__getitem__, values))
            else:
                pieces = ["" if v is MISSING else prefix + _encode(v) for v in values]
            self._pieces[key] = pieces  # a race only computes the same list twice
        return pieces

    def _gap_rows(self, name: str) -> list[int]:
        gaps = self._gaps.get(name)
        if gaps is None:
            column = self._columns.get(name)
            if column is None:
                gaps = list(range(self.count))
            else:
                gaps = [row for row, v in enumerate(column) if v is MISSING] if MISSING in column else []
            self._gaps[name] = gaps
        return gaps

    # -- aggregates ---------------------------------------------------------------------

    def _counts(self, name: str, level: str | None, epsilon: float | None) -> Counter[str]:
        values = self._values(name, level, epsilon)
        counts: Counter[str] = Counter()
        if self._by_value(name, level, epsilon, values):
            for value, n in Counter(values).items():
                if value is not MISSING:
                    counts[value_key(value)] += n
        else:
            counts.update(value_key(v) for v in values if v is not MISSING)
        return counts

    # -- values -------------------------------------------------------------------------

    def _by_value(
        self, name: str, level: str | None, epsilon: float | None, values: list[Any], distinct: Iterable[Any] = ()
    ) -> bool:
        """Whether the cells of this (coarsened, noisy) column may be looked up by value.

        ``distinct`` (the column's distinct values, if known) settles it cheaply when
        they are all strings: no number or boolean equals a string, so none can hide
        behind one of those keys.
        """
        key = (name, level, epsilon)
        safe = self._one_typed.get(key)
        if safe is None:
            only_strings = distinct and all(type(v) is str for v in distinct)
            safe = self._one_typed[key] = True if only_strings else _one_type(values)
        return safe

    def _values(self, name: str, level: str | None, epsilon: float | None = None) -> list[Any]:
        """The column of ``name``, coarsened to ``level``, then with noise at ``epsilon``."""
        if epsilon is None:
            return self._coarsened(name, level)
        key = (name, level, epsilon)
        noisy = self._noisy.get(key)
        if noisy is None:
            spec = self._manifest.field(name)
            assert spec is not None  # _check_noise ran first: a field that offers noise, and a seed
            assert self._noise_seed is not None
            draw = NoiseDraw(self._noise_seed, name, epsilon, noise_domain(spec))
            noisy = self._noisy[key] = draw.column(self._coarsened(name, level), MISSING)
        return noisy

    def _check_noise(self, scope: Scope) -> None:
        """Refuse noise this batch cannot draw, as the reference refuses it."""
        if scope.noise:
            noise_draws(self._manifest, scope, self._noise_seed)

    def _coarsened(self, name: str, level: str | None) -> list[Any]:
        """The column of ``name``, coarsened to ``level``."""
        column = self._columns.get(name)
        if column is None:  # not declared by this manifest: no report has it
            return [MISSING] * self.count
        if level is None:
            return column
        coarse = self._coarse.get((name, level))
        if coarse is None:
            kind = self._kinds[name]
            if kind == "timestamp":
                coarse = coarsen_timestamps(level, column)
            elif _one_type(column) or {type(v) for v in column} <= {int, float, _Missing}:
                # A bucket depends on the number's value alone, so 1 and 1.0 may share one.
                table = {v: MISSING if v is MISSING else coarsen_value(kind, level, v) for v in dict.fromkeys(column)}
                coarse = list(map(table.__getitem__, column))
            else:
                coarse = [v if v is MISSING else coarsen_value(kind, level, v) for v in column]
            self._coarse[(name, level)] = coarse
        return coarse


def _way(scope: Scope, name: str) -> tuple[str | None, float | None]:
    """How ``scope`` sends ``name``: its coarsening level and its noise's epsilon."""
    return scope.coarsen.get(name), scope.noise.get(name)


def _column(reports: Sequence[dict[str, Any]], name: str) -> list[Any]:
    try:
        return list(map(itemgetter(name), reports))  # in C, when every report has the field
    except KeyError:
        return [report.get(name, MISSING) for report in reports]


def _one_type(values: list[Any]) -> bool:
    """Whether a column's cells may be looked up by value: dict keys treat 1, 1.0 and
    True as one key, and 0.0 and -0.0, though ``json.dumps`` writes each differently."""
    types = set(map(type, values))
    types.discard(_Missing)
    return types <= {str} or types <= {bool} or types <= {int}
