from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import tray_app.core
from tests.support.builders import MANIFESTS, NOTESYNC, PHOTOEDIT, manifest_obj, tiny
from tray_app.core import Broker
from tray_app.core.errors import ConflictError, ManifestError, TrayError
from tray_app.core.rules.manifest import (
    Upgrade,
    WireFormat,
    diff_manifests,
    load_manifest,
    manifest_from_obj,
    parse_manifest,
    upgrade,
)
from tray_app.core.rules.otlp_wire import decode_logs, decode_metrics, to_report
from tray_app.core.rules.reports import check_reports


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
    # format: what the vendor's endpoint speaks
    (manifest_obj(format="sentry"), "format", "'sentry' is not supported yet (forwarding crash reports to a Sentry"),
    (manifest_obj(format="dap"), "dap", 'is missing; a format = "dap" manifest needs a [dap] table'),
    (manifest_obj(format="OTLP"), "format", "'OTLP' is not one of telemetry-tray, otlp"),
    (manifest_obj(format="json"), "format", "not one of telemetry-tray, otlp"),
    (manifest_obj(format=1), "format", "not one of"),
    (manifest_obj(format=["otlp"]), "format", "not one of"),
    (manifest_obj(format=None), "format", "is null"),
    (manifest_obj(format="otlp", endpoint="https://c.example.org/v1/logs"), "endpoint", "base URL"),
    (manifest_obj(format="otlp", endpoint="https://c.example.org/otlp/v1/metrics/"), "endpoint", "base URL"),
    # [otlp]: what the app may send in
    (manifest_obj(otlp="photoedit"), "otlp", "must be a table"),
    (manifest_obj(otlp=["photoedit"]), "otlp", "must be a table"),
    (manifest_obj(otlp={}), "otlp.service_names", "is missing"),
    (manifest_obj(otlp={"service_names": None}), "otlp.service_names", "is null"),
    (manifest_obj(otlp={"service_names": []}), "otlp.service_names", "one or more"),
    (manifest_obj(otlp={"service_names": "photoedit"}), "otlp.service_names", "one or more"),
    (manifest_obj(otlp={"service_names": ["a", "a"]}), "otlp.service_names", "'a' is listed twice"),
    (manifest_obj(otlp={"service_names": [""]}), "otlp.service_names", "1 to 256 characters"),
    (manifest_obj(otlp={"service_names": [7]}), "otlp.service_names", "1 to 256 characters"),
    (manifest_obj(otlp={"service_names": ["x" * 257]}), "otlp.service_names", "1 to 256 characters"),
    (manifest_obj(otlp={"service_names": ["photo\u200bedit"]}), "otlp.service_names", "U+200B"),
    (manifest_obj(otlp={"service_names": ["photo\u200dedit"]}), "otlp.service_names", "U+200D"),
    (manifest_obj(otlp={"service_names": ["photo\u202eedit"]}), "otlp.service_names", "U+202E"),
    (manifest_obj(otlp={"service_names": ["photoedit\n"]}), "otlp.service_names", "U+000A"),
    (manifest_obj(otlp={"service_names": [" photoedit"]}), "otlp.service_names", "matched exactly"),
    (manifest_obj(otlp={"service_names": [f"s{i}" for i in range(101)]}), "otlp.service_names", "at most 100"),
    (manifest_obj(otlp={"service_names": ["a"], "service_name": "a"}), "otlp.service_name", "unknown key"),
    # fields[i].source: where an OTLP record carries the field
    (manifest_obj(fields=[_field(source=7)]), "fields[0] (f).source", "not text"),
    (manifest_obj(fields=[_field(source=None)]), "fields[0].source", "is null"),
    (manifest_obj(fields=[_field(source="attribute:f")]), "fields[0] (f).source", "is not one of attr:<key>"),
    (manifest_obj(fields=[_field(source="")]), "fields[0] (f).source", "is not one of attr:<key>"),
    (manifest_obj(fields=[_field(source="attr")]), "fields[0] (f).source", "needs a key: attr:<key>"),
    (manifest_obj(fields=[_field(source="resource:")]), "fields[0] (f).source", "needs a key: resource:<key>"),
    (manifest_obj(fields=[_field(source="body:text")]), "fields[0] (f).source", "is not one of"),
    (manifest_obj(fields=[_field(source="Body")]), "fields[0] (f).source", "is not one of"),
    (manifest_obj(fields=[_field(source="attr:" + "k" * 257)]), "fields[0] (f).source", "longer than 256"),
    (manifest_obj(fields=[_field(source="attr:a\u202eb")]), "fields[0] (f).source", "U+202E"),
    (manifest_obj(fields=[_field(source="attr:a\u200db")]), "fields[0] (f).source", "U+200D"),
    (manifest_obj(fields=[_field(source="attr:f ")]), "fields[0] (f).source", "starts or ends with a space"),
    (manifest_obj(fields=[_field(source="time")]), "fields[0] (f).source", "make the field's type 'timestamp'"),
    (manifest_obj(fields=[_field(type="integer", source="time")]), "fields[0] (f).source", "ISO 8601"),
    (manifest_obj(fields=[_field(type="integer", source="severity")]), "fields[0] (f).source", "'string' or 'enum'"),
    (manifest_obj(fields=[_field(type="boolean", source="event_name")]), "fields[0] (f).source", "'string' or"),
    (manifest_obj(fields=[_field(source="value")]), "fields[0] (f).source", "'integer' or 'number'"),
    (manifest_obj(fields=[_field(type="boolean", source="value")]), "fields[0] (f).source", "as a number"),
    (manifest_obj(fields=[_field(type="integer", source="metric")]), "fields[0] (f).source", "metric's name"),
    (
        manifest_obj(fields=[_field(type="enum", values=["INFO", "WARNING"], source="severity")]),
        "fields[0] (f).values",
        "'WARNING' can never come from a 'severity' source; its values are TRACE, DEBUG, INFO, WARN, ERROR, FATAL",
    ),
    (
        manifest_obj(
            fields=[_field(name="a", type="timestamp", source="time"), _field(type="timestamp", source="time")]
        ),
        "fields[1] (f).source",
        "'time' is already the source of the field 'a'",
    ),
    (
        manifest_obj(fields=[_field(name="a"), _field(source="attr:a")]),
        "fields[1] (f).source",
        "'attr:a' is already the source of the field 'a'",
    ),
    (
        manifest_obj(fields=[_field(name="a", source="attr:f"), _field()]),
        "fields[1] (f).name",
        "'attr:f' is already the source of the field 'a'",
    ),
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


# -- the keys for apps that speak OpenTelemetry: format, [otlp], fields[i].source --------

OTEL_NOTES = MANIFESTS / "otel-notes.toml"

# The stored text (canonical JSON) of the two older examples, as it was before format, [otlp]
# and source existed: a manifest without them must keep its bytes, so stored manifests and
# their hashes do not change.
SERIALISED_BEFORE = {
    PHOTOEDIT: (1456, "2adf9b9d94d08d99bf7aadafee3359fd4ba2a9bd25e1b85747732c9af035116d"),
    NOTESYNC: (1382, "39fe081830e25b89c4b7d02cfe274ee86d371327130586176b047f30a060be63"),
}


@pytest.mark.parametrize("path", sorted(SERIALISED_BEFORE), ids=lambda p: p.name)
def test_manifests_without_the_new_keys_serialise_as_before(path: Path) -> None:
    manifest = load_manifest(path)
    text = manifest.to_json()
    assert (len(text), hashlib.sha256(text.encode("utf-8")).hexdigest()) == SERIALISED_BEFORE[path]
    obj = manifest.to_obj()
    assert "format" not in obj and "otlp" not in obj
    assert all("source" not in spec for spec in obj["fields"])


def test_the_new_keys_default_to_nothing_new() -> None:
    m = tiny()
    assert m.format is WireFormat.TELEMETRY_TRAY and m.otlp_service_names == ()
    assert all(spec.source is None for spec in m.fields)
    assert m.field("n").otlp_source == "attr:n"  # type: ignore[union-attr]
    # Spelling out a default is the same content, with the same stored text.
    fields = [{**spec, "source": f"attr:{spec['name']}"} for spec in manifest_obj()["fields"]]
    spelt = tiny(format="telemetry-tray", fields=fields)
    assert spelt == m and spelt.to_json() == m.to_json()
    assert spelt.field("n").source is None  # type: ignore[union-attr]


def test_wire_format_members() -> None:
    assert [fmt.value for fmt in WireFormat] == ["telemetry-tray", "otlp", "sentry", "dap"]
    assert tray_app.core.WireFormat is WireFormat and "WireFormat" in tray_app.core.__all__
    assert tiny(format="otlp").format is WireFormat.OTLP
    # The signal paths are added to an OTLP vendor's endpoint; with the native format the
    # same URL is just a URL.
    assert tiny(endpoint="https://c.example.org/v1/logs").endpoint == "https://c.example.org/v1/logs"
    assert tiny(format="otlp", endpoint="https://c.example.org/otlp/").format == "otlp"


def test_otlp_service_names() -> None:
    m = tiny(otlp={"service_names": ["photoedit", "photoedit-helper", "Photo Edit ✓"]})
    assert m.otlp_service_names == ("photoedit", "photoedit-helper", "Photo Edit ✓")
    assert m.format is WireFormat.TELEMETRY_TRAY  # sending OTLP in says nothing of what the vendor gets
    assert m.to_obj()["otlp"] == {"service_names": ["photoedit", "photoedit-helper", "Photo Edit ✓"]}
    assert tiny(otlp={"service_names": ["x" * 256]}).otlp_service_names == ("x" * 256,)


# Each source with a field type it can fill; attr:, resource: and body fit any type.
GOOD_SOURCES = [
    ("attr:app.feature", "boolean"),
    ("attr:f", "string"),
    ("attr:" + "k" * 256, "string"),
    ("attr:näme with spaces", "integer"),
    ("resource:service.version", "version"),
    ("resource:host.arch", "enum"),
    ("body", "string"),
    ("body", "number"),
    ("event_name", "string"),
    ("event_name", "enum"),
    ("severity", "string"),
    ("severity", "enum"),
    ("time", "timestamp"),
    ("metric", "string"),
    ("metric", "enum"),
    ("value", "integer"),
    ("value", "number"),
]


@pytest.mark.parametrize(("source", "ftype"), GOOD_SOURCES)
def test_sources_that_fit_their_field(source: str, ftype: str) -> None:
    values = {"values": ["WARN", "ERROR"] if source == "severity" else ["a"]} if ftype == "enum" else {}
    m = tiny(fields=[_field(name="x", type=ftype, source=source, **values)])
    assert m.field("x").source == source  # type: ignore[union-attr]
    assert m.field("x").otlp_source == source  # type: ignore[union-attr]
    assert m.to_obj()["fields"][0]["source"] == source
    assert parse_manifest(m.to_json()) == m


def test_the_opentelemetry_example_registers_cleanly(broker: Broker) -> None:
    m = load_manifest(OTEL_NOTES)
    assert m.format is WireFormat.OTLP and m.otlp_service_names == ("inkwell-notes",)
    assert {spec.name: spec.source for spec in m.fields} == {
        "event": "event_name",
        "severity": "severity",
        "at": "time",
        "app_version": "resource:service.version",
        "os": "resource:os.type",
        "export_format": "attr:inkwell.export.format",
        "search_ms": "attr:inkwell.search.duration_ms",
        "error_type": "attr:exception.type",
        "counter": "metric",
        "count": "value",
    }
    assert parse_manifest(m.to_json()) == m
    as_json = json.loads(m.to_json())
    assert as_json["format"] == "otlp" and as_json["otlp"] == {"service_names": ["inkwell-notes"]}
    registration = broker.register(m)
    assert registration.created and registration.status == "awaiting_consent"
    assert broker.manifest_versions(m.app_id) == [m]


def test_the_opentelemetry_example_maps_what_a_stock_sdk_sends() -> None:
    """Records as the OTel SDK sends them, through the example's sources, are reports it accepts;
    what it does not declare (the SDK's own resource attributes, the message) is dropped."""
    m = load_manifest(OTEL_NOTES)
    sources = {spec.name: spec.source for spec in m.fields}
    resource = {
        "attributes": [
            {"key": "service.name", "value": {"stringValue": "inkwell-notes"}},
            {"key": "service.version", "value": {"stringValue": "2.4.1"}},
            {"key": "os.type", "value": {"stringValue": "linux"}},
            {"key": "telemetry.sdk.language", "value": {"stringValue": "python"}},
        ]
    }
    logs = {
        "resourceLogs": [
            {
                "resource": resource,
                "scopeLogs": [
                    {
                        "scope": {"name": "inkwell.export"},
                        "logRecords": [
                            {
                                "timeUnixNano": "1795000000123456789",
                                "severityNumber": 13,
                                "severityText": "WARNING",
                                "eventName": "note.exported",
                                "body": {"stringValue": "exported 'Shopping list' to /home/ada/list.pdf"},
                                "attributes": [
                                    {"key": "inkwell.export.format", "value": {"stringValue": "pdf"}},
                                    {"key": "code.file.path", "value": {"stringValue": "/opt/inkwell/export.py"}},
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    record = decode_logs(json.dumps(logs).encode(), "application/json").records[0]
    report, dropped = to_report(record, sources)
    assert report == {
        "event": "note.exported",
        "severity": "WARN",
        "at": "2026-11-18T11:06:40.123456Z",
        "app_version": "2.4.1",
        "os": "linux",
        "export_format": "pdf",
    }
    assert dropped == ["attr:code.file.path", "body", "resource:service.name", "resource:telemetry.sdk.language"]
    metrics = {
        "resourceMetrics": [
            {
                "resource": resource,
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "inkwell.sync.conflicts",
                                "sum": {
                                    "aggregationTemporality": 1,
                                    "isMonotonic": True,
                                    "dataPoints": [{"asInt": "3", "timeUnixNano": "1795000000000000000"}],
                                },
                            }
                        ]
                    }
                ],
            }
        ]
    }
    point = decode_metrics(json.dumps(metrics).encode(), "application/json").points[0]
    counted, _ = to_report(point, sources)
    assert counted == {
        "counter": "inkwell.sync.conflicts",
        "count": 3,
        "at": "2026-11-18T11:06:40Z",
        "app_version": "2.4.1",
        "os": "linux",
    }
    check = check_reports(m, [report, counted], date(2026, 11, 18))
    assert check.rejected == [] and len(check.accepted) == 2


def test_the_new_keys_round_trip() -> None:
    fields = [
        _field(name="event", source="event_name"),
        _field(name="at", type="timestamp", source="time", coarsen="hour"),
        _field(name="level", type="enum", values=["ERROR", "FATAL"], source="severity"),
        _field(name="ver", type="version", source="resource:service.version"),
        _field(name="plain"),
    ]
    m = tiny(format="otlp", otlp={"service_names": ["tiny", "tiny-cli"]}, fields=fields)
    obj = m.to_obj()
    assert obj["format"] == "otlp" and obj["otlp"] == {"service_names": ["tiny", "tiny-cli"]}
    assert [spec.get("source") for spec in obj["fields"]] == [
        "event_name",
        "time",
        "severity",
        "resource:service.version",
        None,
    ]
    assert manifest_from_obj(obj) == m
    assert manifest_from_obj(json.loads(json.dumps(obj))) == m
    assert parse_manifest(m.to_json()) == m
    toml = (
        'app_id = "org.example.tiny"\nname = "Tiny"\nversion = 1\nvendor = "Example"\n'
        'endpoint = "https://t.example.org/v1"\nprivacy_policy = "https://example.org/privacy"\n'
        'retention_days = 30\npurpose = "Testing"\nformat = "otlp"\n'
        '[otlp]\nservice_names = ["tiny", "tiny-cli"]\n'
        '[[fields]]\nname = "event"\ntype = "string"\ndescription = "d"\nsource = "event_name"\n'
        '[[fields]]\nname = "at"\ntype = "timestamp"\ndescription = "d"\nsource = "time"\ncoarsen = "hour"\n'
        '[[fields]]\nname = "level"\ntype = "enum"\nvalues = ["ERROR", "FATAL"]\ndescription = "d"\n'
        'source = "severity"\n'
        '[[fields]]\nname = "ver"\ntype = "version"\ndescription = "d"\nsource = "resource:service.version"\n'
        '[[fields]]\nname = "plain"\ntype = "string"\ndescription = "d"\n'
    )
    assert parse_manifest(toml, "toml") == m


@pytest.mark.parametrize(
    ("before", "after", "reason"),
    [
        ({}, {"format": "otlp"}, "its vendor now receives OpenTelemetry (OTLP), not Telemetry Tray's own JSON"),
        ({"format": "otlp"}, {}, "its vendor now receives Telemetry Tray's own JSON, not OpenTelemetry (OTLP)"),
        ({}, {"otlp": {"service_names": ["tiny"]}}, "it now sends OpenTelemetry data as the service 'tiny'"),
        (
            {"otlp": {"service_names": ["tiny"]}},
            {"otlp": {"service_names": ["tiny", "tiny-cli"]}},
            "it now sends OpenTelemetry data as the services 'tiny', 'tiny-cli'",
        ),
        (
            {"otlp": {"service_names": ["tiny"]}},
            {"otlp": {"service_names": ["a", "b", "c", "d", "e"]}},
            "it now sends OpenTelemetry data as the services 'a', 'b', 'c' and 2 more",
        ),
        ({"otlp": {"service_names": ["tiny"]}}, {}, "it no longer sends OpenTelemetry data"),
    ],
)
def test_a_changed_format_or_otlp_table_asks_for_consent_again(
    before: dict[str, Any], after: dict[str, Any], reason: str
) -> None:
    old, new = tiny(**before), tiny(version=2, **after)
    step = upgrade(old, new, "allowed")
    assert step is not None and step.status == "awaiting_consent"
    assert step.change.reconsent == (reason,)
    assert upgrade(old, new, "blocked") == Upgrade(step.change, "blocked")
    assert upgrade(old, new, "awaiting_consent") == Upgrade(step.change, "awaiting_consent")
    # A version names one content: the same version with these keys changed is refused.
    with pytest.raises(ConflictError, match="already registered with different content"):
        upgrade(old, tiny(**after), "allowed")


def test_the_same_service_names_and_format_are_no_reason_to_ask_again() -> None:
    keys: dict[str, Any] = {"format": "otlp", "otlp": {"service_names": ["tiny"]}}
    step = upgrade(tiny(**keys), tiny(version=2, purpose="Testing", **keys), "allowed")
    assert step is not None and step.status == "allowed" and step.change.reconsent == ()


def test_a_changed_source_makes_the_field_new_to_the_person() -> None:
    def with_source(source: str | None) -> list[dict[str, Any]]:
        fields = manifest_obj()["fields"]
        if source is not None:
            fields[2]["source"] = source
        return fields

    old = tiny(fields=with_source(None))
    moved = diff_manifests(old, tiny(version=2, fields=with_source("resource:user.name")))
    assert moved.changed == ("who",) and moved.excluded_until_reviewed == ("who",)
    assert moved.reconsent == ()
    # The default spelt out is no change.
    assert diff_manifests(old, tiny(version=2, fields=with_source("attr:who"))).changed == ()
    with pytest.raises(ConflictError):
        upgrade(old, tiny(fields=with_source("attr:user")), "allowed")
