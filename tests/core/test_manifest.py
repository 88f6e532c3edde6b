from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import NOTESYNC, PHOTOEDIT, manifest_obj, tiny
from tray_app.core.errors import ConflictError, ManifestError, TrayError
from tray_app.core.rules.manifest import (
    Upgrade,
    diff_manifests,
    load_manifest,
    manifest_from_obj,
    parse_manifest,
    upgrade,
)


def test_example_manifests_load() -> None:
    photo = load_manifest(PHOTOEDIT)
    notes = load_manifest(NOTESYNC)
    assert photo.app_id == "org.example.photoedit"
    assert photo.version == 3 and photo.cadence == "daily" and photo.min_count == 5
    assert photo.field("account_email") is not None
    assert photo.field("account_email").sensitivity == "identifying"  # type: ignore[union-attr]
    assert photo.field("event").values == ("open", "export", "crop", "filter", "crash")  # type: ignore[union-attr]
    assert str(notes.auth) == "bearer" and notes.cadence == "hourly"
    assert notes.field("legacy_format").expires == date(2027, 6, 30)  # type: ignore[union-attr]


def test_toml_and_json_give_the_same_manifest(tmp_path: Path) -> None:
    photo = load_manifest(PHOTOEDIT)
    as_json = tmp_path / "photo.json"
    as_json.write_text(json.dumps(photo.to_obj()))
    assert load_manifest(as_json) == photo
    assert parse_manifest(photo.to_json()) == photo  # format sniffed from the text


def test_toml_date_for_expires() -> None:
    text = (
        PHOTOEDIT.read_text()
        + '\n[[fields]]\nname = "beta"\ntype = "boolean"\ndescription = "b"\nexpires = 2027-01-31\n'
    )
    assert parse_manifest(text).field("beta").expires == date(2027, 1, 31)  # type: ignore[union-attr]


def _field(**kv: Any) -> dict[str, Any]:
    return {"name": "f", "type": "string", "description": "d", **kv}


BAD: list[tuple[dict[str, Any], str, str]] = [
    (manifest_obj(app_id="photoedit"), "app_id", "reverse-DNS"),
    (manifest_obj(app_id=7), "app_id", "not text"),
    (manifest_obj(name=""), "name", "empty"),
    (manifest_obj(name="Photo\u202eEdit"), "name", "U+202E"),
    (manifest_obj(name="x" * 101), "name", "at most 100"),
    (manifest_obj(vendor=None), "vendor", "is null"),
    ({k: v for k, v in manifest_obj().items() if k != "vendor"}, "vendor", "missing"),
    (manifest_obj(min_count=None), "min_count", "leave the key out"),
    (manifest_obj(endpoint="https://[::1"), "endpoint", "not a valid URL"),
    (manifest_obj(version=0), "version", "out of range"),
    (manifest_obj(version=True), "version", "whole number"),
    (manifest_obj(version="3"), "version", "whole number"),
    (manifest_obj(endpoint="http://t.example.org/v1"), "endpoint", "use https"),
    (manifest_obj(endpoint="ftp://t.example.org/v1"), "endpoint", "https://"),
    (manifest_obj(endpoint="https://user:pw@t.example.org/"), "endpoint", "keyring"),
    (manifest_obj(endpoint="https://t.example.org:99999/"), "endpoint", "not a valid URL"),
    (manifest_obj(endpoint="https:///nohost"), "endpoint", "https://"),
    (manifest_obj(privacy_policy="see our website"), "privacy_policy", "http(s) URL"),
    (manifest_obj(retention_days=-1), "retention_days", "out of range"),
    (manifest_obj(retention_days=1.5), "retention_days", "whole number"),
    (manifest_obj(purpose="   "), "purpose", "empty"),
    (manifest_obj(cadence="monthly"), "cadence", "hourly, daily, weekly"),
    (manifest_obj(auth="basic"), "auth", "none, bearer"),
    (manifest_obj(auth="header:Bad Name"), "auth", "header name"),
    (manifest_obj(auth="header:Idempotency-Key"), "auth", "set by Telemetry Tray"),
    (manifest_obj(min_count=1), "min_count", "out of range"),
    (manifest_obj(sensitivty="x"), "sensitivty", "unknown key"),
    (manifest_obj(fields=[]), "fields", "at least one field"),
    (manifest_obj(fields="event"), "fields", "at least one field"),
    (manifest_obj(fields=[_field()] * 2), "fields[1].name", "declared twice"),
    (manifest_obj(fields=[_field(name="1abc")]), "fields[0].name", "not a field name"),
    (manifest_obj(fields=[_field(type="float")]), "fields[0] (f).type", "not one of"),
    (manifest_obj(fields=[_field(sensitivity="secret")]), "fields[0] (f).sensitivity", "not one of"),
    (manifest_obj(fields=[_field(required="yes")]), "fields[0] (f).required", "true or false"),
    (manifest_obj(fields=[_field(type="enum")]), "fields[0] (f).values", "non-empty list"),
    (manifest_obj(fields=[_field(type="enum", values=["a", "a"])]), "fields[0] (f).values", "twice"),
    (manifest_obj(fields=[_field(values=["a"])]), "fields[0] (f).values", "only fields of type 'enum'"),
    (manifest_obj(fields=[_field(coarsen="day")]), "fields[0] (f).coarsen", "cannot be coarsened"),
    (manifest_obj(fields=[_field(type="timestamp", coarsen="year")]), "fields[0] (f).coarsen", "hour, day"),
    (manifest_obj(fields=[_field(expires="next year")]), "fields[0] (f).expires", "YYYY-MM-DD"),
    (manifest_obj(fields=[_field(description=None)]), "fields[0].description", "is null"),
    (manifest_obj(fields=[{"name": "f", "type": "string"}]), "fields[0] (f).description", "missing"),
    (manifest_obj(fields=[_field(sensitivity=None)]), "fields[0].sensitivity", "is null"),
    (manifest_obj(fields=[_field(expires="20261124")]), "fields[0] (f).expires", "YYYY-MM-DD"),
    (manifest_obj(fields=[_field(secret=True)]), "fields[0].secret", "unknown key"),
    (manifest_obj(fields=["event"]), "fields[0]", "must be a table"),
    (manifest_obj(fields=[_field(name=f"f{i}") for i in range(201)]), "fields", "at most 200"),
]


@pytest.mark.parametrize(("obj", "key", "words"), BAD, ids=[f"{k}:{w}" for _, k, w in BAD])
def test_invalid_manifest_names_the_key(obj: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ManifestError) as caught:
        manifest_from_obj(obj)
    assert caught.value.key == key
    assert words in caught.value.message
    assert key in caught.value.message
    assert isinstance(caught.value, TrayError) and caught.value.title == "Invalid manifest"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xfe not utf8", "UTF-8"),
        (b"{ not json", "not valid JSON"),
        (b"app_id = ", "not valid TOML"),
        (b"[1, 2]", "not valid TOML"),
        (b"[" * 100_000, "not valid TOML"),
        (b"{" + b'"a":' * 50_000 + b"1" + b"}" * 50_000, "JSON"),
        (b"x" * (300 * 1024), "at most"),
        (b'{"app_id": 1, "app_id": 2}', "given twice"),
        (b'{"n": ' + b"1" * 5000 + b"}", "not valid JSON"),
        (b"a = " + b"[" * 5000 + b"]" * 5000, "TOML"),
    ],
)
def test_unparseable_manifest_is_refused_clearly(data: bytes, words: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data)
    assert words in caught.value.message


def test_json_array_manifest_is_refused() -> None:
    with pytest.raises(ManifestError, match=r"table .* or an object"):
        parse_manifest(b"[1, 2]", "json")


def test_loopback_http_endpoints_are_allowed() -> None:
    for url in ("http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:9/x", "http://127.2.3.4/"):
        assert tiny(endpoint=url).endpoint == url


def test_missing_file_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "nope.toml")


def test_defaults() -> None:
    obj = manifest_obj()
    m = manifest_from_obj(obj)
    assert (m.cadence, str(m.auth), m.min_count) == ("daily", "none", 5)
    assert m.field("n").sensitivity == "anonymous" and m.field("n").required is False  # type: ignore[union-attr]


def test_diff_marks_new_and_changed_fields() -> None:
    old = tiny()
    fields = [
        {"name": "event", "type": "string", "description": "what happened, reworded", "required": True},
        {"name": "n", "type": "number", "description": "a number"},
        {"name": "extra", "type": "boolean", "description": "new"},
    ]
    new = tiny(version=2, fields=fields, endpoint="https://other.example.org/")
    change = diff_manifests(old, new)
    assert change.added == ("extra",)
    assert change.removed == ("who",)
    assert change.changed == ("n",)  # type changed; a reworded description is not a new field
    assert change.excluded_until_reviewed == ("extra", "n")
    assert change.endpoint_changed


def test_a_byte_order_mark_at_the_start_is_ignored(tmp_path: Path) -> None:
    for source in (PHOTOEDIT, NOTESYNC):
        copy = tmp_path / source.name
        copy.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())
        assert load_manifest(copy) == load_manifest(source)


# -- the version rule: what registering a manifest for a known app does ---------------


@pytest.mark.parametrize("status", ["awaiting_consent", "allowed", "blocked"])
def test_the_same_version_with_the_same_content_is_nothing_new(status: str) -> None:
    assert upgrade(tiny(), tiny(), status) is None
    assert upgrade(tiny(version=4), manifest_from_obj(tiny(version=4).to_obj()), status) is None


@pytest.mark.parametrize(
    "changes",
    [{"purpose": "Other"}, {"name": "Tiny 2"}, {"min_count": 9}, {"endpoint": "https://other.example.org/"}],
)
def test_the_same_version_with_other_content_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ConflictError) as caught:
        upgrade(tiny(version=2), tiny(version=2, **changes), "allowed")
    assert caught.value.message == (
        "manifest version 2 is already registered with different content; raise 'version' to change it"
    )


def test_an_older_version_is_refused_even_if_identical_otherwise() -> None:
    with pytest.raises(ConflictError) as caught:
        upgrade(tiny(version=3), tiny(version=2), "allowed")
    assert caught.value.message == "manifest version 2 is older than the registered version 3"


def test_a_newer_version_that_keeps_the_terms_keeps_the_status() -> None:
    fields = [*tiny().to_obj()["fields"], {"name": "extra", "type": "boolean", "description": "new"}]
    for status in ("awaiting_consent", "allowed", "blocked"):
        step = upgrade(tiny(), tiny(version=2, fields=fields), status)
        assert step == Upgrade(diff_manifests(tiny(), tiny(version=2, fields=fields)), status)
        assert step.change.added == ("extra",) and step.change.reconsent == ()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"endpoint": "https://other.example.org/v1"}, "it now sends to other.example.org"),
        ({"vendor": "Someone Else"}, "the vendor is now Someone Else"),
        ({"purpose": "Advertising"}, "its stated purpose changed"),
        ({"retention_days": 365}, "the vendor now keeps data 365 days, not 30"),
    ],
)
def test_a_newer_version_that_changes_the_terms_asks_again_if_allowed(changes: dict[str, Any], reason: str) -> None:
    step = upgrade(tiny(), tiny(version=2, **changes), "allowed")
    assert step is not None and step.status == "awaiting_consent"
    assert step.change.reconsent == (reason,)
    # A blocked app stays blocked; one still waiting keeps waiting.
    assert upgrade(tiny(), tiny(version=2, **changes), "blocked") == Upgrade(step.change, "blocked")
    assert upgrade(tiny(), tiny(version=2, **changes), "awaiting_consent") == Upgrade(step.change, "awaiting_consent")


def test_a_shorter_retention_is_no_reason_to_ask_again() -> None:
    step = upgrade(tiny(), tiny(version=2, retention_days=7), "allowed")
    assert step is not None and step.status == "allowed" and step.change.reconsent == ()
