"""Fuzzing the manifest parser: random and structured junk, TOML and JSON.

Every manifest is either a valid :class:`Manifest` whose text shown to people cannot
spoof the UI, or refused with a TrayError a person can read; nothing else escapes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.builders import PHOTOEDIT, manifest_obj
from tests.support.fuzz_inputs import SPOOFING_CHARS, Tally, assert_clear_refusal, junk_values, nasty_text, shown_safely
from tray_app.core.errors import ManifestError
from tray_app.core.rules.manifest import MAX_ENUM_VALUES, MAX_FIELDS, MAX_MANIFEST_BYTES, Manifest, manifest_from_obj
from tray_app.core.rules.manifest import parse_manifest as _parse_manifest

pytestmark = pytest.mark.slow

TALLY = Tally("manifest")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A valid manifest with one field of each kind that has extra keys (enum values, coarsen, expires).
VALID: dict[str, Any] = manifest_obj(
    auth="header:X-Api-Key",
    min_count=5,
    fields=[
        {"name": "event", "type": "enum", "description": "what happened", "required": True, "values": ["a", "b"]},
        {"name": "n", "type": "integer", "description": "a number", "coarsen": "bucket"},
        {"name": "who", "type": "string", "description": "the user", "sensitivity": "identifying"},
        {"name": "old", "type": "boolean", "description": "legacy", "expires": "2027-06-30"},
    ],
)
TOP_TEXT = ("app_id", "name", "vendor", "endpoint", "privacy_policy", "purpose", "cadence", "auth")
TOP_INT = ("version", "retention_days", "min_count")
FIELD_KEYS = ("name", "type", "description", "required", "sensitivity", "values", "expires", "coarsen")


@pytest.fixture(scope="module", autouse=True)
def _tally() -> Iterator[None]:
    yield
    TALLY.report()


def parse_manifest(data: bytes | str, fmt: Literal["toml", "json"] | None = None) -> Manifest:
    TALLY.add()
    return _parse_manifest(data, fmt)


def outcome(call: Callable[[], Manifest]) -> Manifest | ManifestError:
    """The manifest, or the refusal after checking it is one a person can read."""
    try:
        manifest = call()
    except Exception as exc:
        refusal = assert_clear_refusal(exc)
        assert isinstance(refusal, ManifestError), f"{type(refusal).__name__}: {refusal}"
        return refusal
    assert_shown_safely(manifest)
    return manifest


def from_obj(obj: object) -> Manifest | ManifestError:
    TALLY.add()
    return outcome(lambda: manifest_from_obj(obj))


def assert_shown_safely(manifest: Manifest) -> None:
    """Nothing a person reads about the app can carry controls, bidi or invisible characters,
    and the stored form reads back as the same manifest."""
    for text in (manifest.app_id, manifest.name, manifest.vendor, manifest.endpoint, manifest.privacy_policy):
        assert shown_safely(text), repr(text)
    assert shown_safely(manifest.purpose, multiline=True), repr(manifest.purpose)
    assert shown_safely(str(manifest.auth)), repr(manifest.auth)
    for spec in manifest.fields:
        assert shown_safely(spec.name), repr(spec.name)
        assert shown_safely(spec.description, multiline=True), repr(spec.description)
        assert all(shown_safely(value) for value in spec.values), spec.values
    assert _parse_manifest(manifest.to_json()) == manifest


# -- random junk ----------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=2048), fmt=st.sampled_from([None, "toml", "json"]))
@example(data=b"\xef\xbb\xbf{}", fmt=None)
@example(data=b"{" * 5000, fmt="json")
@example(data=b"a=" + b"[" * 5000, fmt="toml")
def test_random_bytes_are_refused_cleanly(data: bytes, fmt: Literal["toml", "json"] | None) -> None:
    outcome(lambda: parse_manifest(data, fmt))


@FUZZ
@given(text=st.text(max_size=500) | nasty_text, fmt=st.sampled_from([None, "toml", "json"]))
def test_random_text_is_refused_cleanly(text: str, fmt: Literal["toml", "json"] | None) -> None:
    outcome(lambda: parse_manifest(text, fmt))


@FUZZ
@given(obj=junk_values)
def test_random_values_are_refused_cleanly(obj: object) -> None:
    from_obj(obj)
    try:
        text = json.dumps(obj, allow_nan=True)
    except (ValueError, TypeError, UnicodeEncodeError):
        return
    outcome(lambda: parse_manifest(text))
    outcome(lambda: parse_manifest(text.encode("utf-8", "surrogatepass")))


# -- one key wrong --------------------------------------------------------------------


@FUZZ
@given(key=st.sampled_from(sorted(VALID)), value=junk_values)
def test_any_value_for_a_top_level_key(key: str, value: object) -> None:
    result = from_obj({**VALID, key: value})
    if isinstance(result, ManifestError):
        assert result.key.split(".")[0].split("[")[0] in VALID or result.key == ""


@FUZZ
@given(key=st.sampled_from(TOP_TEXT), value=junk_values.filter(lambda v: not isinstance(v, str)))
def test_text_keys_refuse_every_other_type(key: str, value: object) -> None:
    result = from_obj({**VALID, key: value})
    assert isinstance(result, ManifestError) and result.key == key


@FUZZ
@given(
    key=st.sampled_from(TOP_INT),
    value=junk_values.filter(lambda v: isinstance(v, bool) or not isinstance(v, int))
    | st.sampled_from([1.0, 5.0, "5", True, date(2026, 1, 1)]),
)
def test_integer_keys_refuse_every_other_type(key: str, value: object) -> None:
    result = from_obj({**VALID, key: value})
    assert isinstance(result, ManifestError) and result.key == key


@FUZZ
@given(index=st.integers(0, len(VALID["fields"]) - 1), key=st.sampled_from(FIELD_KEYS), value=junk_values)
def test_any_value_for_a_field_key(index: int, key: str, value: object) -> None:
    fields = [dict(spec) for spec in VALID["fields"]]
    fields[index][key] = value
    result = from_obj({**VALID, "fields": fields})
    if isinstance(result, ManifestError):
        assert result.key.startswith("fields[")


_WRONG_FIELD_TYPES: dict[str, Callable[[object], bool]] = {
    "name": lambda v: not isinstance(v, str),
    "type": lambda v: not isinstance(v, str),
    "description": lambda v: not isinstance(v, str),
    "required": lambda v: not isinstance(v, bool),
    "sensitivity": lambda v: not isinstance(v, str),
    "values": lambda v: not isinstance(v, list) or not all(isinstance(x, str) for x in v) or len(v) == 0,
    "expires": lambda v: not isinstance(v, str),
    "coarsen": lambda v: not isinstance(v, str),
}


@FUZZ
@given(data=st.data(), key=st.sampled_from(FIELD_KEYS))
def test_field_keys_refuse_every_other_type(data: st.DataObject, key: str) -> None:
    value = data.draw(junk_values.filter(_WRONG_FIELD_TYPES[key]))
    # The enum field takes every key. Its name leads the error's key once it is known
    # (null is refused before that).
    fields = [dict(spec) for spec in VALID["fields"]]
    fields[0][key] = value
    result = from_obj({**VALID, "fields": fields})
    assert isinstance(result, ManifestError)
    assert result.key in (f"fields[0].{key}", f"fields[0] (event).{key}")


@FUZZ
@given(fields=st.lists(junk_values, min_size=1, max_size=4))
def test_junk_field_lists(fields: list[object]) -> None:
    from_obj({**VALID, "fields": fields})


# -- text shown to people ---------------------------------------------------------------

# Where a person reads the text, and the key an error must name.
_SHOWN: list[tuple[str, str, bool]] = [
    ("name", "name", False),
    ("vendor", "vendor", False),
    ("purpose", "purpose", True),
    ("app_id", "app_id", False),
    ("endpoint", "endpoint", False),
    ("privacy_policy", "privacy_policy", False),
    ("auth", "auth", False),
    ("fields.name", "fields[0].name", False),
    ("fields.description", "fields[0] (event).description", True),
    ("fields.values", "fields[0] (event).values", False),
]


def _with_text(where: str, change: Callable[[str], str]) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(json.dumps(VALID))
    if where.startswith("fields."):
        key = where.split(".", 1)[1]
        spec = obj["fields"][0]
        if key == "values":
            spec["values"] = [change(spec["values"][0]), *spec["values"][1:]]
        else:
            spec[key] = change(spec[key])
    else:
        obj[where] = change(obj[where])
    return obj


@FUZZ
@given(
    target=st.sampled_from(_SHOWN),
    char=st.sampled_from(SPOOFING_CHARS),
    at=st.floats(0, 1),
)
@example(target=("name", "name", False), char="\u202e", at=0.5)
@example(target=("fields.name", "fields[0].name", False), char="\n", at=1.0)
@example(target=("auth", "auth", False), char="\n", at=1.0)
@example(target=("vendor", "vendor", False), char="\u200b", at=0.5)
@example(target=("name", "name", False), char="\u2028", at=0.5)
def test_spoofing_characters_in_shown_text_are_refused(target: tuple[str, str, bool], char: str, at: float) -> None:
    where, key, multiline = target
    if multiline and char == "\n":
        return  # purpose and descriptions may have paragraphs

    at_end = []

    def insert(text: str) -> str:
        cut = round(at * len(text))
        at_end.append(cut in (0, len(text)))
        return text[:cut] + char + text[cut:]

    result = from_obj(_with_text(where, insert))
    # Whitespace at either end of trimmed text is cut off, never stored; anything else is
    # refused, naming the key.
    if isinstance(result, Manifest):
        assert char.isspace() and at_end == [True], f"{char!r} accepted in {where}"
    else:
        assert result.key == key, result.message


@FUZZ
@given(target=st.sampled_from(_SHOWN), text=nasty_text)
def test_any_text_in_shown_places(target: tuple[str, str, bool], text: str) -> None:
    from_obj(_with_text(target[0], lambda _: text))


# -- TOML -------------------------------------------------------------------------------


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def _toml(obj: dict[str, Any], replace: tuple[str, str] | None = None) -> str:
    """The manifest as TOML text, with one value (``"key"`` or ``"fields.N.key"``)
    replaced by a raw TOML fragment."""
    lines = []
    for key, value in obj.items():
        if key != "fields":
            raw = replace[1] if replace and replace[0] == key else _toml_value(value)
            lines.append(f"{key} = {raw}")
    for index, spec in enumerate(obj["fields"]):
        lines.append("\n[[fields]]")
        for key, value in spec.items():
            raw = replace[1] if replace and replace[0] == f"fields.{index}.{key}" else _toml_value(value)
            lines.append(f"{key} = {raw}")
    return "\n".join(lines) + "\n"


TOML_FRAGMENTS = [
    "inf", "-inf", "nan", "1e400", "0x7fffffffffffffff", "-9223372036854775809", "9" * 5000,
    "1979-05-27T07:32:00Z", "1979-05-27T07:32:00", "1979-05-27", "07:32:00", "2027-02-30",
    "{}", "{a = 1}", "[]", "[[], {}]", "[" * 2000 + "]" * 2000, "{a = " * 500 + "1" + "}" * 500,
    '"\\u202e"', '"\\u0000"', '"\\ud800"', '"\\U0010ffff"', '"\\U00110000"', '"""\na\u202eb"""',
    "'''\n\u2028'''", '"\u200b"', '"a\\nb"', '"a\\rb"', "true", "'lit\\eral'", '"x" "y"', "",
]  # fmt: skip
_TOML_TARGETS = [key for key in VALID if key != "fields"] + [
    f"fields.{i}.{key}" for i, spec in enumerate(VALID["fields"]) for key in spec
]


def test_valid_toml_round_trips() -> None:
    assert parse_manifest(_toml(VALID)) == manifest_from_obj(VALID)


@FUZZ
@given(
    target=st.sampled_from(_TOML_TARGETS),
    fragment=st.sampled_from(TOML_FRAGMENTS) | st.text(max_size=40) | nasty_text,
)
def test_toml_with_one_value_replaced_by_junk(target: str, fragment: str) -> None:
    outcome(lambda: parse_manifest(_toml(VALID, (target, fragment)), "toml"))


@FUZZ
@given(
    key=st.sampled_from(FIELD_KEYS),
    value=st.sampled_from([date(2027, 1, 31), datetime(2027, 1, 31, 10, 0), time(10, 0), 1.5, float("nan")]),
)
def test_toml_only_types_in_fields(key: str, value: object) -> None:
    fields = [dict(spec) for spec in VALID["fields"]]
    fields[3][key] = value
    result = from_obj({**VALID, "fields": fields})
    if isinstance(result, Manifest):
        assert key == "expires" and value == date(2027, 1, 31)


# -- invalid UTF-8, huge and deep ----------------------------------------------------------

# A lone continuation byte, an overlong slash, an encoded surrogate, a cut sequence,
# a code point over U+10FFFF, a 5-byte form.
_INVALID_UTF8 = [b"\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80"]


@FUZZ
@given(bad=st.sampled_from(_INVALID_UTF8), at=st.floats(0, 1), fmt=st.sampled_from([None, "toml", "json"]))
def test_invalid_utf8_anywhere(bad: bytes, at: float, fmt: Literal["toml", "json"] | None) -> None:
    text = (json.dumps(VALID) if fmt != "toml" else _toml(VALID)).encode()
    cut = round(at * len(text))
    result = outcome(lambda: parse_manifest(text[:cut] + bad + text[cut:], fmt))
    assert isinstance(result, ManifestError) and "UTF-8" in result.message


def _deep(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


HUGE: list[tuple[str, Callable[[], Manifest]]] = [
    ("text over the size limit", lambda: parse_manifest(b" " * (MAX_MANIFEST_BYTES + 1))),
    ("JSON nested 100k deep", lambda: parse_manifest("[" * 100_000 + "]" * 100_000)),
    ("JSON object nested 100k deep", lambda: parse_manifest('{"a":' * 100_000 + "1" + "}" * 100_000)),
    ("TOML arrays nested 50k deep", lambda: parse_manifest("a = " + "[" * 50_000 + "]" * 50_000, "toml")),
    ("TOML tables nested deep", lambda: parse_manifest("a = " + "{b = " * 20_000 + "1" + "}" * 20_000, "toml")),
    # tomllib is quadratic in a dotted key's parts: this one would take minutes.
    ("TOML dotted key filling the size limit", lambda: parse_manifest("a" + ".a" * 127_000 + " = 1", "toml")),
    ("TOML table header of 60k parts", lambda: parse_manifest("[" + "a." * 60_000 + "a]", "toml")),
    ("JSON integer of 5000 digits", lambda: parse_manifest('{"version": ' + "9" * 5000 + "}")),
    ("name of 100k characters", lambda: manifest_from_obj({**VALID, "name": "x" * 100_000})),
    ("an integer of 5000 digits", lambda: manifest_from_obj({**VALID, "version": 10**5000})),
    ("an integer of 5000 digits as a name", lambda: manifest_from_obj({**VALID, "name": 10**5000})),
    ("an integer of 5000 digits as a cadence", lambda: manifest_from_obj({**VALID, "cadence": 10**5000})),
    ("an integer of 5000 digits in enum values", lambda: manifest_from_obj(_with_enum_values([10**5000]))),
    ("a list nested 900 deep as a name", lambda: manifest_from_obj({**VALID, "name": _deep(900)})),
    ("a million-item list as a name", lambda: manifest_from_obj({**VALID, "name": list(range(1_000_000))})),
    ("an unknown key 100k long", lambda: manifest_from_obj({**VALID, "k" * 100_000: 1})),
    ("an unknown key with a bidi override", lambda: manifest_from_obj({**VALID, "na\u202eme": 1})),
    ("an unknown field key 100k long", lambda: manifest_from_obj(_with_field_key("k\u202e" * 50_000))),
    ("a repeated JSON key 100k long", lambda: parse_manifest(_twice("k" * 100_000))),
    ("a repeated JSON key with a newline", lambda: parse_manifest('{"a\\u2028b\\nc": 1, "a\\u2028b\\nc": 2}')),
    ("10k unknown keys", lambda: manifest_from_obj({**VALID, **{f"k{i}": i for i in range(10_000)}})),
    (f"{MAX_FIELDS + 1} fields", lambda: manifest_from_obj({**VALID, "fields": [VALID["fields"][1]] * 201})),
    ("a million fields", lambda: manifest_from_obj({**VALID, "fields": [{}] * 1_000_000})),
    (f"{MAX_ENUM_VALUES + 1} enum values", lambda: manifest_from_obj(_with_enum_values(list(map(str, range(501)))))),
    ("an auth header name 100k long", lambda: manifest_from_obj({**VALID, "auth": "header:" + "\u202e" * 100_000})),
    ("an app_id with a newline", lambda: manifest_from_obj({**VALID, "app_id": "org.example\n.tiny"})),
]  # fmt: skip


def _twice(key: str) -> str:
    return "{" + f"{json.dumps(key)}: 1, {json.dumps(key)}: 2" + "}"


def _with_enum_values(values: list[object]) -> dict[str, Any]:
    fields = [dict(spec) for spec in VALID["fields"]]
    fields[0]["values"] = values
    return {**VALID, "fields": fields}


def _with_field_key(key: str) -> dict[str, Any]:
    fields = [dict(spec) for spec in VALID["fields"]]
    fields[1][key] = 1
    return {**VALID, "fields": fields}


@pytest.mark.parametrize(("what", "call"), HUGE, ids=[what for what, _ in HUGE])
def test_huge_and_deep_manifests_are_refused(what: str, call: Callable[[], Manifest]) -> None:
    TALLY.add()
    result = outcome(call)
    assert isinstance(result, ManifestError), f"{what} was accepted"


def test_the_example_manifest_survives_the_checks() -> None:
    assert_shown_safely(_parse_manifest(PHOTOEDIT.read_bytes()))
