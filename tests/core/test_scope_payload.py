from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.builders import tiny
from tray_app.core.errors import ScopeError
from tray_app.core.rules.clock import period_start, to_iso
from tray_app.core.rules.coarsening import bucket, coarsen_value
from tray_app.core.rules.payload import OTHER, BatchFrame, Payload, aggregate, canonical_bytes, fold, reference_render
from tray_app.core.rules.reports import Report, check_reports
from tray_app.core.rules.scope import (
    Scope,
    carry_scope,
    check_scope,
    default_scope,
    fit_scope,
)

FIELDS: list[dict[str, Any]] = [
    {"name": "s", "type": "string", "description": "s"},
    {"name": "i", "type": "integer", "description": "i"},
    {"name": "x", "type": "number", "description": "x"},
    {"name": "b", "type": "boolean", "description": "b"},
    {"name": "t", "type": "timestamp", "description": "t"},
    {"name": "v", "type": "version", "description": "v"},
    {"name": "e", "type": "enum", "values": ["a", "b", "c"], "description": "e"},
    {"name": "who", "type": "string", "description": "who", "sensitivity": "identifying"},
    {"name": "iid", "type": "string", "description": "install id", "sensitivity": "pseudonymous"},
]
FRAME = BatchFrame("org.example.tiny", "b1", 1, "2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z")
LEVELS = {"i": ["bucket"], "x": ["bucket"], "t": ["hour", "day", "week", "month"], "v": ["major", "minor"]}


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("hour", "2026-11-26T13:00:00Z"),
        ("day", "2026-11-26T00:00:00Z"),
        ("week", "2026-11-23T00:00:00Z"),  # Monday
        ("month", "2026-11-01T00:00:00Z"),
    ],
)
def test_timestamp_coarsening(level: str, expected: str) -> None:
    assert coarsen_value("timestamp", level, "2026-11-26T13:45:12.5Z") == expected


def test_version_coarsening() -> None:
    assert coarsen_value("version", "major", "3.1.4") == "3"
    assert coarsen_value("version", "minor", "3.1.4") == "3.1"
    assert coarsen_value("version", "minor", "3.1.4-beta.2") == "3.1"
    assert coarsen_value("version", "minor", "3") == "3"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (0.7, 0),
        (1, 1),
        (1.9, 1),
        (2, 2),
        (3, 2),
        (4, 4),
        (1000, 512),
        (2**40 + 5, 2**40),
        (-0.5, -1),
        (-4, -4),
        (-5, -8),
    ],
)
def test_bucket_is_the_lower_bound_of_a_power_of_two(value: float, expected: int) -> None:
    assert bucket(value) == expected
    assert coarsen_value("integer", "bucket", value) == expected


def test_identifying_fields_start_excluded() -> None:
    scope = default_scope(tiny(fields=FIELDS))
    assert "who" not in scope.fields
    assert set(scope.fields) == {"s", "i", "x", "b", "t", "v", "e"}


def test_pseudonymous_fields_start_excluded() -> None:
    # A stable install id links every batch of an install: it starts excluded too.
    assert "iid" not in default_scope(tiny(fields=FIELDS)).fields


def test_every_name_an_edit_gives_must_be_a_declared_field() -> None:
    m = tiny(fields=FIELDS)
    start = default_scope(m)
    for edit in ({"exclude": ["ss"]}, {"include": ["whoo"]}, {"coarsen": {"tt": "day"}}):
        with pytest.raises(ScopeError, match=r"is not a field of .*; its fields are s, i, x, b, t, v, e, who, iid"):
            start.edited(m, **edit)  # type: ignore[arg-type]
    assert "s" not in start.edited(m, exclude=["s"]).fields
    assert start.edited(m, coarsen={"t": "day"}).coarsen == {"t": "day"}


def test_a_field_included_later_starts_at_its_manifests_coarsening() -> None:
    fields = [
        *FIELDS,
        {"name": "n", "type": "integer", "description": "n", "sensitivity": "pseudonymous", "coarsen": "bucket"},
    ]
    m = tiny(fields=fields)
    start = default_scope(m)
    assert "n" not in start.fields
    assert start.edited(m, include=["n"]).coarsen == {"n": "bucket"}
    assert start.edited(m, include=["n"], coarsen={"n": "bucket"}).coarsen == {"n": "bucket"}
    # A level the person set on a field already sent stays theirs.
    assert "n" not in Scope((*start.fields, "n")).edited(m, include=["n"]).coarsen


def test_coarsening_a_field_that_is_not_sent_is_refused_not_dropped() -> None:
    # Dropping it quietly would let a misspelt name send the field at full detail.
    with pytest.raises(ScopeError, match="'tt' is excluded"):
        Scope(("t",), {"tt": "day"})
    m = tiny(fields=FIELDS)
    # Excluding a coarsened field drops its coarsening with it.
    assert Scope(("s", "t"), {"t": "day"}).edited(m, exclude=["t"]).coarsen == {}


def test_manifest_coarsening_is_the_default() -> None:
    fields = [{"name": "t", "type": "timestamp", "description": "t", "coarsen": "day"}]
    assert default_scope(tiny(fields=fields)).coarsen == {"t": "day"}


def test_check_scope_refuses_unknown_fields_and_levels() -> None:
    m = tiny(fields=FIELDS)
    with pytest.raises(ScopeError, match="'nope' is not a field"):
        check_scope(Scope(("nope",)), m)
    with pytest.raises(ScopeError, match="can only be kept or excluded"):
        check_scope(Scope(("s",), {"s": "day"}), m)
    with pytest.raises(ScopeError, match="use one of hour, day, week, month"):
        check_scope(Scope(("t",), {"t": "year"}), m)
    with pytest.raises(ScopeError, match="excluded, so it cannot be coarsened"):
        Scope(("s", "t")).edited(m, exclude=["t"], coarsen={"t": "day"})
    with pytest.raises(ScopeError):
        Scope.from_obj({"fields": "s"})


def test_fit_scope_drops_expired_fields() -> None:
    fields = [*FIELDS, {"name": "old", "type": "string", "description": "o", "expires": "2026-11-01"}]
    m = tiny(fields=fields)
    scope = Scope(("s", "old"))
    assert fit_scope(scope, m, date(2026, 11, 1)).fields == ("old", "s")
    assert fit_scope(scope, m, date(2026, 11, 2)).fields == ("s",)


def test_carry_scope_excludes_new_and_changed_fields() -> None:
    old = tiny(fields=FIELDS)
    fields = [f for f in FIELDS if f["name"] != "x"] + [
        {"name": "x", "type": "string", "description": "now a string"},
        {"name": "fresh", "type": "boolean", "description": "new"},
    ]
    new = tiny(version=2, fields=fields)
    carried = carry_scope(Scope(("s", "x", "t"), {"t": "day"}), old, new)
    assert carried.fields == ("s", "t")
    assert carried.coarsen == {"t": "day"}


def test_records_payload_is_canonical_and_scoped() -> None:
    m = tiny(fields=FIELDS)
    reports: list[Report] = [{"s": "ü", "t": "2026-11-24T10:11:12Z", "who": "alice"}, {"i": 5}]
    payload = reference_render(FRAME, m, Scope(("s", "t", "i"), {"t": "day", "i": "bucket"}), reports)
    expected = {
        "app_id": "org.example.tiny",
        "batch_id": "b1",
        "manifest_version": 1,
        "window": {"start": "2026-11-24T00:00:00Z", "end": "2026-11-25T00:00:00Z"},
        "scope": {"fields": ["i", "s", "t"], "coarsen": {"i": "bucket", "t": "day"}, "mode": "records"},
        "reports": [{"s": "ü", "t": "2026-11-24T00:00:00Z"}, {"i": 4}],
    }
    body = json.dumps(expected, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert payload.body == body
    assert payload.sha256 == hashlib.sha256(body).hexdigest()
    assert b"alice" not in payload.body


def test_aggregate_payload_folds_rare_values() -> None:
    m = tiny(fields=FIELDS, min_count=3)
    reports: list[Report] = [{"e": "a"}] * 5 + [{"e": "b"}] * 2 + [{"e": "c"}] * 1 + [{"s": "x"}] * 2
    obj = reference_render(FRAME, m, Scope(("e", "s"), mode="aggregate"), reports).obj()
    assert "reports" not in obj
    assert obj["aggregates"] == {"e": {"a": 5, OTHER: 3}, "s": {}}


def test_fold_moves_small_values_into_other_until_it_is_big_enough() -> None:
    assert fold({"a": 10, "b": 5, "c": 1}, 5) == {"a": 10, OTHER: 6}
    assert fold({"a": 10, "b": 6, "c": 7}, 5) == {"a": 10, "b": 6, "c": 7}
    assert fold({"a": 4}, 5) == {}
    assert fold({OTHER: 9, "a": 5}, 5) == {"a": 5, OTHER: 9}


# -- properties ----------------------------------------------------------------------

_ts = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
)
_values: dict[str, st.SearchStrategy[Any]] = {
    "s": st.text(max_size=8),
    "i": st.integers(min_value=-(2**62), max_value=2**62),
    "x": st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15),
    "b": st.booleans(),
    "t": _ts,
    "v": st.from_regex(r"\A\d{1,3}(\.\d{1,3}){0,2}\Z"),
    "e": st.sampled_from(["a", "b", "c"]),
    "who": st.text(min_size=1, max_size=8),
}
_report = st.fixed_dictionaries({}, optional=_values)


@st.composite
def _scope(draw: st.DrawFn) -> Scope:
    fields = draw(st.lists(st.sampled_from(list(_values)), unique=True))
    coarsen = {f: draw(st.sampled_from(LEVELS[f])) for f in fields if f in LEVELS and draw(st.booleans())}
    return Scope(tuple(fields), coarsen, draw(st.sampled_from(["records", "aggregate"])))


@settings(max_examples=300, deadline=None)
@given(reports=st.lists(_report, max_size=40), scope=_scope(), min_count=st.integers(2, 6))
def test_payload_properties(reports: list[Report], scope: Scope, min_count: int) -> None:
    m = tiny(fields=FIELDS, min_count=min_count)
    check_scope(scope, m)
    payload = reference_render(FRAME, m, scope, reports)
    # The digest is of exactly these bytes, and the bytes are canonical.
    assert payload.sha256 == hashlib.sha256(payload.body).hexdigest()
    obj = payload.obj()
    assert canonical_bytes(obj) == payload.body
    # Deterministic: the same inputs give the same bytes.
    assert reference_render(FRAME, m, scope, [dict(reversed(list(r.items()))) for r in reports]).body == payload.body
    excluded = set(_values) - set(scope.fields)
    if scope.mode == "records":
        assert len(obj["reports"]) == len(reports)
        for sent in obj["reports"]:
            assert not excluded & set(sent)
        for name in excluded:
            for sent in obj["reports"]:
                assert name not in sent
    else:
        assert set(obj["aggregates"]) == set(scope.fields)
        for name, counts in obj["aggregates"].items():
            present = sum(1 for r in reports if name in r)
            assert all(n >= min_count for n in counts.values())
            assert sum(counts.values()) == present or (counts == {} and present < min_count)


@settings(max_examples=200, deadline=None)
@given(counts=st.dictionaries(st.text(max_size=3), st.integers(1, 30), max_size=12), min_count=st.integers(2, 10))
def test_fold_properties(counts: dict[str, int], min_count: int) -> None:
    folded = fold(counts, min_count)
    total = sum(counts.values())
    assert all(n >= min_count for n in folded.values())
    assert sum(folded.values()) == total or (folded == {} and total < min_count)
    for value, n in folded.items():
        if value != OTHER:
            assert counts[value] == n


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 8), max_value=datetime(9999, 12, 1), timezones=st.just(UTC)),
    level=st.sampled_from(["hour", "day", "week", "month"]),
)
def test_timestamp_fast_path_agrees_with_date_arithmetic(moment: datetime, level: str) -> None:
    stored = check_reports(tiny(fields=FIELDS), [{"t": moment.isoformat()}], date(2026, 1, 1)).accepted[0]["t"]
    assert stored == to_iso(moment)
    assert coarsen_value("timestamp", level, stored) == to_iso(period_start(moment, level))


def test_aggregate_counts_coarsened_values() -> None:
    records: list[Report] = [{"t": "2026-11-24T00:00:00Z"}] * 5
    assert aggregate(["t"], records, 5) == {"t": {"2026-11-24T00:00:00Z": 5}}


@settings(max_examples=300, deadline=None)
@given(reports=st.lists(_report, max_size=40), scope=_scope(), limit=st.integers(1, 3000), copies=st.integers(1, 60))
def test_pretty_start_is_the_start_of_the_whole_pretty_payload(
    reports: list[Report], scope: Scope, limit: int, copies: int
) -> None:
    m = tiny(fields=FIELDS)
    check_scope(scope, m)
    # Copies make bodies longer than the start it decodes first (4 × limit + 4 KiB).
    payload = reference_render(FRAME, m, scope, reports * copies)
    whole = json.dumps(payload.obj(), indent=2, ensure_ascii=False)
    assert payload.pretty_start(limit) == (whole[:limit], len(whole) > limit)


def test_pretty_start_decodes_only_the_reports_it_shows() -> None:
    m = tiny(fields=FIELDS)
    reports: list[Report] = [{"s": "x" * 50, "i": n} for n in range(20_000)]
    payload = reference_render(FRAME, m, Scope(("i", "s")), reports)
    text, more = payload.pretty_start(2_000)
    assert more and len(text) == 2_000
    assert text == json.dumps(payload.obj(), indent=2, ensure_ascii=False)[:2_000]
    # A body cut short after the shown reports gives the same start: nothing past them is read.
    cut = payload.body[: payload.body.index(b'{"i":100,')] + b"]}"
    assert Payload(cut, "").pretty_start(2_000) == (text, True)


def test_pretty_start_refuses_what_is_not_an_object() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        Payload(b"[1]", "").pretty_start(10)


def test_a_start_of_a_payload_that_ends_between_members_is_not_taken_for_all_of_it() -> None:
    from tray_app.core.rules.payload import _pretty_start

    assert _pretty_start('{"aggregates":{"x":{"a":2}},"app_id":"a",', 10) is None
    assert _pretty_start('{"aggregates":{"x":{"a":2}},"app_id":"a"}', 1000, whole=True) == (
        '{\n  "aggregates": {\n    "x": {\n      "a": 2\n    }\n  },\n  "app_id": "a"\n}',
        False,
    )


@settings(max_examples=300, deadline=None)
@given(value=st.text(alphabet=st.characters(codec="utf-8")))
def test_plainly_hides_nothing_and_means_the_same(value: str) -> None:
    import unicodedata

    from tray_app.core.rules.preview_text import plainly

    text = json.dumps({"s": value}, indent=2, ensure_ascii=False)
    shown = plainly(text)
    assert json.loads(shown) == {"s": value}
    hidden = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
    assert not [c for c in shown if c not in "\n" and unicodedata.category(c) in hidden]
    assert plainly("only ascii") == "only ascii"


def test_plainly_shows_the_characters_that_can_smuggle_data() -> None:
    from tray_app.core.rules.preview_text import plainly

    # Variation selectors can carry a byte each after any visible letter ("emoji smuggling");
    # fillers and odd spaces look like nothing or like a space.
    value = "click" + "".join(chr(c) for c in (0xFE00, 0xFE0F, 0xE0100, 0xE01EF, 0x034F, 0x115F, 0x3164, 0xFFA0))
    value += "\u00a0\u2003\u2800"
    shown = plainly(json.dumps({"e": value}, ensure_ascii=False))
    assert shown.isascii() and shown.startswith('{"e": "click\\ufe00\\ufe0f')
    assert json.loads(shown) == {"e": value}
    assert plainly('{"e": "café 😀"}') == '{"e": "café 😀"}'  # what prints as itself stays
