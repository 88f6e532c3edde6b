from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.builders import tiny
from tray_app.core.errors import MalformedError, TooLargeError
from tray_app.core.rules.intake import MAX_REPORTS, decode_reports
from tray_app.core.rules.reports import _fast_check, check_reports, check_value

TODAY = date(2026, 11, 24)


def _fields() -> list[dict[str, object]]:
    return [
        {"name": "event", "type": "string", "description": "e", "required": True},
        {"name": "n", "type": "integer", "description": "n"},
        {"name": "x", "type": "number", "description": "x"},
        {"name": "ok", "type": "boolean", "description": "ok"},
        {"name": "ts", "type": "timestamp", "description": "ts"},
        {"name": "v", "type": "version", "description": "v"},
        {"name": "kind", "type": "enum", "values": ["a", "b"], "description": "k"},
        {"name": "old", "type": "string", "description": "gone", "expires": "2026-11-23"},
        {"name": "last", "type": "string", "description": "last day", "expires": "2026-11-24"},
    ]


def test_good_reports_are_kept_and_normalised() -> None:
    m = tiny(fields=_fields())
    check = check_reports(
        m,
        [
            {
                "event": "e",
                "n": 3,
                "x": 1.5,
                "ok": False,
                "ts": "2026-11-24T10:00:00+02:00",
                "v": "3.1.4-rc1",
                "kind": "b",
                "last": "s",
            }
        ],
        TODAY,
    )
    assert check.rejected == []
    assert check.accepted == [
        {
            "event": "e",
            "n": 3,
            "x": 1.5,
            "ok": False,
            "ts": "2026-11-24T08:00:00Z",
            "v": "3.1.4-rc1",
            "kind": "b",
            "last": "s",
        }
    ]


def test_undeclared_and_expired_fields_are_dropped_and_named() -> None:
    m = tiny(fields=_fields())
    check = check_reports(m, [{"event": "e", "secret": "pw", "old": "x"}, {"event": "f", "secret": 1}], TODAY)
    assert check.accepted == [{"event": "e"}, {"event": "f"}]
    assert check.dropped == {"secret": 2, "old": 1}
    assert check.dropped_fields == ["old", "secret"]


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        ([1, 2], "JSON object"),
        ("event", "JSON object"),
        ({"n": 1}, "required field 'event' is missing"),
        ({"event": None}, "null"),
        ({"event": 5}, "not a string"),
        ({"event": "e", "n": 1.0}, "not an integer"),
        ({"event": "e", "n": True}, "not an integer"),
        ({"event": "e", "n": 2**70}, "out of range"),
        ({"event": "e", "x": "1"}, "not a number"),
        ({"event": "e", "x": float("nan")}, "not finite"),
        ({"event": "e", "ok": 1}, "true or false"),
        ({"event": "e", "ts": "yesterday"}, "ISO 8601"),
        ({"event": "e", "ts": "2026-11-24T10:00:00"}, "with a zone"),
        ({"event": "e", "v": "three"}, "version"),
        ({"event": "e", "kind": "c"}, "declared values"),
        ({"event": "e", "kind": ["a"]}, "not a string"),
        ({"event": {"nested": 1}}, "not a string"),
        ({"event": "x" * 5000}, "at most 4096"),
        ({"event": "a\ud800b"}, "surrogate"),
        ({"secret": 1}, "required field 'event'"),
    ],
)
def test_bad_reports_are_rejected_with_a_reason(report: object, reason: str) -> None:
    check = check_reports(tiny(fields=_fields()), [{"event": "fine"}, report], TODAY)
    assert check.accepted == [{"event": "fine"}]
    assert len(check.rejected) == 1
    index, error = check.rejected[0]
    assert index == 1 and reason in error


def test_values_have_one_spelling() -> None:
    check = check_reports(tiny(fields=_fields()), [{"event": "e", "x": 2.0, "v": "01.002.0-rc1"}], TODAY)
    assert check.accepted == [{"event": "e", "x": 2, "v": "1.2.0-rc1"}]
    assert isinstance(check.accepted[0]["x"], int)


def test_a_report_of_only_undeclared_fields_is_rejected_and_not_counted() -> None:
    fields = [{"name": "n", "type": "integer", "description": "n"}]
    check = check_reports(tiny(fields=fields), [{"secret": 1}, {"n": 1, "other": 2}], TODAY)
    assert check.accepted == [{"n": 1}]
    assert check.rejected == [(0, "it has none of the fields the manifest declares")]
    assert check.dropped == {"other": 1}


def test_hostile_field_names_are_bounded() -> None:
    report = {"event": "e", **{f"junk\x00{i}" + "y" * 200: 1 for i in range(500)}}
    check = check_reports(tiny(), [report], TODAY)
    assert check.accepted == [{"event": "e"}]
    assert len(check.dropped) == 100
    assert all(len(name) <= 64 and name.isprintable() for name in check.dropped)


def test_decode_shapes() -> None:
    assert decode_reports(b'{"event": "a"}') == [{"event": "a"}]
    assert decode_reports(b'[{"event": "a"}, {"event": "b"}]') == [{"event": "a"}, {"event": "b"}]
    assert decode_reports(b'{"reports": [{"event": "a"}]}') == [{"event": "a"}]


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        (b"", MalformedError, "not valid JSON"),
        (b"{", MalformedError, "not valid JSON"),
        (b"\xc3\x28", MalformedError, "UTF-8"),
        (b'"text"', MalformedError, "one report object"),
        (b"[]", MalformedError, "no reports"),
        (b'{"reports": {}}', MalformedError, "must be a list"),
        (b'{"event": NaN}', MalformedError, "NaN"),
        (b"[" * 600_000 + b"]" * 600_000, TooLargeError, "1 MiB"),
        (b"[" * 100_000 + b"]" * 100_000, MalformedError, "nested too deeply"),
        (b"[" + b"{}," * (MAX_REPORTS) + b"{}]", TooLargeError, "at most 10000"),
        (b'{"event": "a", "event": "b"}', MalformedError, "appears twice"),
        (b'{"n": ' + b"9" * 5000 + b"}", MalformedError, "not valid JSON"),
    ],
)
def test_decode_refuses_bad_bodies(body: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        decode_reports(body)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["a", "b", "3.1.4", "03.1", "2026-11-24T10:00:00Z", "1.2.3-rc1", "x" * 5000, "\\ud800"]),
    lambda inner: st.lists(inner, max_size=2),
    max_leaves=3,
)  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(value=_json_values, spec_index=st.integers(0, len(_fields()) - 1))
def test_the_fast_check_never_accepts_what_check_value_would_change(value: object, spec_index: int) -> None:
    spec = tiny(fields=_fields()).fields[spec_index]
    if _fast_check(spec)(value):
        checked = check_value(spec, value)
        assert checked == value and type(checked) is type(value)
