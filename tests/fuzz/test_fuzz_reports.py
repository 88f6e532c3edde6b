"""Fuzzing report intake: body decoding and checking against the manifest.

Every report is accepted (normalised, declared fields only, stored spelling) or
rejected with a reason; a body that is not reports is refused with a TrayError; and
whatever is accepted renders as canonical payload bytes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import date

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.builders import tiny
from tests.support.fuzz_inputs import Tally, assert_clear_refusal, junk_values, nasty_text, shown_safely
from tray_app.core.rules.canonical_json import canonical_bytes
from tray_app.core.rules.intake import MAX_BODY_BYTES, decode_reports
from tray_app.core.rules.manifest import Manifest
from tray_app.core.rules.reports import MAX_DROPPED_NAMES, MAX_STRING, ReportCheck, check_reports

pytestmark = pytest.mark.slow

TALLY = Tally("reports")
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TODAY = date(2026, 11, 24)

# One field of every type, one required, one expired (dropped like an undeclared one).
MANIFEST: Manifest = tiny(
    fields=[
        {"name": "event", "type": "enum", "description": "what", "values": ["open", "crop", "ünï"], "required": True},
        {"name": "s", "type": "string", "description": "text"},
        {"name": "i", "type": "integer", "description": "count"},
        {"name": "x", "type": "number", "description": "measure"},
        {"name": "b", "type": "boolean", "description": "flag"},
        {"name": "t", "type": "timestamp", "description": "when"},
        {"name": "v", "type": "version", "description": "version"},
        {"name": "gone", "type": "string", "description": "old", "expires": "2026-01-01"},
    ]
)
# The same without a required field, so most junk gets as far as the value checks.
LOOSE: Manifest = tiny(fields=[{**spec.to_obj(), "required": False} for spec in MANIFEST.fields])
LIVE = {spec.name: spec for spec in MANIFEST.fields if not spec.expired(TODAY)}
_CANONICAL_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z")
_VERSION = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9}){0,3}([-+][0-9A-Za-z.+-]{1,64})?")


@pytest.fixture(scope="module", autouse=True)
def _tally() -> Iterator[None]:
    yield
    TALLY.report()


def check(manifest: Manifest, reports: list[object]) -> ReportCheck:
    TALLY.add()
    result = check_reports(manifest, reports, TODAY)
    assert_sound(manifest, reports, result)
    return result


def assert_sound(manifest: Manifest, reports: list[object], result: ReportCheck) -> None:
    assert len(result.accepted) + len(result.rejected) == len(reports)
    indices = [index for index, _ in result.rejected]
    assert indices == sorted(set(indices)) and all(0 <= i < len(reports) for i in indices)
    for _, reason in result.rejected:
        # Reasons go back to the app in the 202/422 body and to a person at the CLI.
        assert isinstance(reason, str) and reason and len(reason) <= 300
        assert shown_safely(reason), repr(reason)
    for report in result.accepted:
        assert report, "an empty report was accepted"
        assert set(report) <= set(LIVE), f"undeclared fields kept: {set(report) - set(LIVE)}"
        assert all(name in report for name, spec in LIVE.items() if spec.required and manifest is MANIFEST)
        for name, value in report.items():
            assert_stored_spelling(name, value)
    assert len(result.dropped) <= MAX_DROPPED_NAMES
    for name in result.dropped:
        assert len(name) <= 64 and (name == "" or name.isprintable()), repr(name)
    # What was accepted renders canonically, reads back as itself, and passes the checks
    # again unchanged: normalising is done once and for all.
    body = canonical_bytes(result.accepted)
    assert json.loads(body) == result.accepted
    if result.accepted:
        again = check_reports(manifest, list(result.accepted), TODAY)
        assert again.accepted == result.accepted and not again.rejected and not again.dropped


def assert_stored_spelling(name: str, value: object) -> None:
    kind = LIVE[name].type
    if kind == "boolean":
        assert type(value) is bool
    elif kind == "integer":
        assert type(value) is int and -(2**63) <= value < 2**63
    elif kind == "number":
        assert isinstance(value, int | float) and type(value) is not bool
        assert math.isfinite(value) and -(2**63) <= value < 2**63
        assert not (type(value) is float and value.is_integer() and abs(value) < 2**53), "2.0 not stored as 2"
    else:
        assert type(value) is str and len(value) <= MAX_STRING
        value.encode("utf-8")  # no lone surrogates
        if kind == "enum":
            assert value in LIVE[name].values
        elif kind == "timestamp":
            assert _CANONICAL_TS.fullmatch(value), value
        elif kind == "version":
            assert _VERSION.fullmatch(value), value


def decode(body: bytes) -> list[object] | None:
    TALLY.add()
    try:
        return decode_reports(body)
    except Exception as exc:
        assert_clear_refusal(exc)
        return None


# -- checking decoded values ----------------------------------------------------------------

_NAMES = st.sampled_from([*LIVE, "gone", "other", ""]) | nasty_text
_FIELD_VALUES = st.one_of(
    junk_values,
    st.sampled_from(["open", "crop", "ünï", "OPEN", "open\n", "crop\u202e"]),
    st.sampled_from(["3.1.4", "03.01", "3.1.4\n", "\u0663.\u0661", "3.1.4-beta+b.1", "3." + "1" * 20, "1.2.3.4.5"]),
    st.sampled_from(
        [
            "2026-11-24T10:00:00Z",
            "2026-11-24T10:00:00.000000Z",
            "2026-11-24 10:00:00+01:00",
            "2026-11-24T10:00:00Z\n",
            "2026-13-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-11-24T10:00:00.1234567891Z",
            "2026-11-24T10:00Z",
            "\u0662026-11-24T10:00:00Z",
        ]
    ),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), 2.0, 2.5, 1e300, -0.0, 2**53 + 1.0, 9.007199254740993e15]),
    st.sampled_from(["x" * MAX_STRING, "é" * MAX_STRING, "x" * (MAX_STRING + 1), "\ud800", "a\udfffb"]),
)
_REPORTS = st.lists(
    st.dictionaries(_NAMES, _FIELD_VALUES, max_size=6) | junk_values,
    min_size=1,
    max_size=8,
)


@FUZZ
@given(reports=_REPORTS)
@example(reports=[{"v": "3.1.4\n"}])
@example(reports=[{"v": "\u0663.\u0661"}])
@example(reports=[{"s": 10**5000}])
@example(reports=[{"event": "open", "i": 10**5000}])
@example(reports=[{"event": "open", 10**5000: 1, (1, 2): 3}])
def test_any_reports_are_accepted_or_rejected_with_a_reason(reports: list[object]) -> None:
    check(LOOSE, reports)
    check(MANIFEST, reports)


@FUZZ
@given(field=st.sampled_from(sorted(LIVE)), value=_FIELD_VALUES)
def test_any_value_for_each_type(field: str, value: object) -> None:
    result = check(LOOSE, [{field: value}])
    if result.accepted:
        assert set(result.accepted[0]) == {field}


def test_many_undeclared_names_are_counted_within_bounds() -> None:
    reports: list[object] = [{"event": "open", f"\u202eextra{i}" + "x" * 200: i} for i in range(500)]
    result = check(MANIFEST, reports)
    assert len(result.accepted) == 500 and len(result.dropped) == MAX_DROPPED_NAMES


# -- decoding bodies ------------------------------------------------------------------------

_LITERALS = [
    "NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" * 5000, "-0", "1E400", "0.1e-400",
    '"\\ud800"', '"\\udc00x"', '"\\ud800\\udc00"', '"\\u0000"', '"\\u202e"', "true", "null", "[]", "{}",
    "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000, '"' + "x" * 5000 + '"', "nul", "tru", "01", "1.",
    ".5", "+1", "0x10", "'x'", '"\\x41"', '"\t"', "\ufeff{}",
]  # fmt: skip


def _report_body(fields: dict[str, str], wrapped: bool) -> bytes:
    inner = "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in fields.items()) + "}"
    text = '{"reports":[' + inner + "]}" if wrapped else inner
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(
    fields=st.dictionaries(_NAMES, st.sampled_from(_LITERALS) | st.text(max_size=20), max_size=5),
    wrapped=st.booleans(),
)
@example(fields={"x": "NaN"}, wrapped=False)
@example(fields={"x": "1e999"}, wrapped=True)
@example(fields={"s": '"\\ud800"'}, wrapped=True)
def test_bodies_with_junk_literals(fields: dict[str, str], wrapped: bool) -> None:
    reports = decode(_report_body(fields, wrapped))
    if reports is not None:
        check(LOOSE, reports)


@FUZZ
@given(body=st.binary(max_size=1024))
@example(body=b'{"event": "open"}\xff')
@example(body=b'\xef\xbb\xbf{"event": "open"}')
@example(body=b'{"event": "\xed\xa0\x80"}')
def test_random_bytes_as_a_body(body: bytes) -> None:
    reports = decode(body)
    if reports is not None:
        check(LOOSE, reports)


@FUZZ
@given(obj=junk_values, nan=st.booleans())
def test_any_json_value_as_a_body(obj: object, nan: bool) -> None:
    try:
        text = json.dumps(obj, allow_nan=nan)
    except (ValueError, TypeError):
        return
    reports = decode(text.encode("utf-8", "surrogatepass"))
    if reports is not None:
        check(LOOSE, reports)
        check(MANIFEST, reports)


HUGE = [
    ("over 1 MiB", b'{"s":"' + b"x" * MAX_BODY_BYTES + b'"}'),
    ("10,001 reports", b"[" + b",".join([b"{}"] * 10_001) + b"]"),
    ("a list nested 100k deep", b"[" * 100_000 + b"]" * 100_000),
    ("an object nested 100k deep", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("an integer of 5000 digits", b'{"i":' + b"9" * 5000 + b"}"),
    ("a repeated key", b'{"event":"open","event":"crop"}'),
    ("a repeated key 100k long", b'{"' + b"k" * 100_000 + b'":1,"' + b"k" * 100_000 + b'":2}'),
    ("reports that is not a list", b'{"reports":{"event":"open"}}'),
    ("no reports", b'{"reports":[]}'),
    ("a bare string", b'"open"'),
    ("nothing", b""),
]


@pytest.mark.parametrize(("what", "body"), HUGE, ids=[what for what, _ in HUGE])
def test_huge_deep_and_empty_bodies_are_refused(what: str, body: bytes) -> None:
    assert decode(body) is None, f"{what} was decoded"


def test_a_million_character_string_is_rejected_not_refused() -> None:
    # Under 1 MiB of body, but over the string limit: the report is rejected with a reason.
    reports = decode(json.dumps({"event": "open", "s": "x" * 1_000_000}).encode())
    assert reports is not None
    result = check(MANIFEST, reports)
    assert result.rejected and "at most 4096" in result.rejected[0][1]
