"""The curated crash schema (tray_app/core/rules/crash_report.py): what of a Sentry event becomes
a crash report. The main test runs a stock sentry-sdk app whose event holds a planted secret (a
local variable), a planted user name (its paths), a planted host name and a planted breadcrumb,
and checks that the SDK did send them and that none of them comes out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.sentry_capture import PLANTED_VALUES, planted_app, run_sentry_script
from tray_app.core.rules import crash_report as cr
from tray_app.core.rules import sentry_envelope as se
from tray_app.core.rules.manifest import FIELD_TYPES, SENSITIVITIES
from tray_app.core.rules.reports import MAX_STRING
from tray_app.core.rules.scope import STARTS_EXCLUDED

# ------------------------------------------------------------------------------------------------
# The stock SDK's event


@pytest.fixture(scope="module")
def sdk_event(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, Any]]:
    """The decompressed envelope a stock sentry-sdk sent for the planted app's crash, and its event."""
    sent = run_sentry_script(planted_app(tmp_path_factory.mktemp("crash")), args=["crash"]).requests[0]
    body = se.decode_body(sent.body, sent.encoding)
    event = se.sort_items(se.parse_envelope(body)).event
    assert event is not None
    return body, event


def test_the_sdk_did_send_every_planted_value(sdk_event: tuple[bytes, dict[str, Any]]) -> None:
    # Otherwise the test below would pass for want of anything to leave out.
    body, event = sdk_event
    for planted in PLANTED_VALUES:
        assert planted.encode() in body, planted
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert any("vars" in frame and "abs_path" in frame for frame in frames)
    assert event["server_name"] == "planted-host"


def test_no_planted_value_comes_out(sdk_event: tuple[bytes, dict[str, Any]]) -> None:
    _, event = sdk_event
    values, dropped = cr.crash_fields(event)
    out = json.dumps([values, dropped])
    for planted in PLANTED_VALUES:
        assert planted not in out, planted
    assert "/" not in out.replace("photoedit@", "")  # no path at all


def test_what_comes_out_of_the_sdk_event(sdk_event: tuple[bytes, dict[str, Any]]) -> None:
    _, event = sdk_event
    values, dropped = cr.crash_fields(event)
    assert values["exception_type"] == "ExportError"
    assert values["exception_module"] == "photoedit.export"
    assert values["exception_value"] == "could not export the image: it has no layers"
    assert values["exception_handled"] is True
    assert values["event_id"] == event["event_id"]
    assert values["level"] == "error"
    assert values["platform"] == "python"
    assert values["release"] == "photoedit@3.1.4"
    assert values["environment"] == "production"
    assert values["runtime_name"] == "CPython"
    assert values["tag:plan"] == "pro"
    assert str(values["timestamp"]).endswith("Z")
    frames = cr.stack_frames(str(values["stack"]))
    app = [(f.module, f.function) for f in frames if f.in_app]
    assert app == [("__main__", "<module>"), ("photoedit.export", "export_image"), ("photoedit.export", "_check")]
    assert ("json", "loads") in [(f.module, f.function) for f in frames if not f.in_app]
    assert all(isinstance(f.line, int) and f.line > 0 for f in frames)
    assert frames[-1].line == 11  # the raise in _check, line 11 of photoedit/export.py
    for name in ("breadcrumbs", "extra", "modules", "server_name", "exception.values[].stacktrace.frames[].vars"):
        assert name in dropped
    assert "exception.values[].stacktrace.frames[].abs_path" in dropped
    assert set(values) <= {spec.name for spec in cr.CRASH_FIELDS} | {"tag:plan"}


def test_the_sdk_stack_coarsens(sdk_event: tuple[bytes, dict[str, Any]]) -> None:
    stack = str(cr.crash_fields(sdk_event[1])[0]["stack"])
    assert cr.app_frames_only(stack) == "\n".join(line for line in stack.split("\n") if line.startswith("app "))
    assert "json" not in cr.app_frames_only(stack)
    without = cr.stack_without_lines(stack)
    assert [(f.module, f.function, f.in_app) for f in cr.stack_frames(without)] == [
        (f.module, f.function, f.in_app) for f in cr.stack_frames(stack)
    ]
    assert all(f.line is None for f in cr.stack_frames(without))
    assert not any(ch.isdigit() for ch in without.replace("photoedit", ""))


# ------------------------------------------------------------------------------------------------
# The schema


def test_the_schema_is_well_formed() -> None:
    names = [spec.name for spec in cr.CRASH_FIELDS]
    assert len(names) == len(set(names))
    for spec in cr.CRASH_FIELDS:
        assert spec.type in (*FIELD_TYPES, "stack"), spec
        assert spec.sensitivity in SENSITIVITIES, spec
        assert cr.is_crash_field(spec.name)
    free_text = {spec.name for spec in cr.CRASH_FIELDS if spec.sensitivity in STARTS_EXCLUDED}
    assert free_text == {"exception_value", "message"}


def test_which_names_a_manifest_may_declare() -> None:
    assert cr.is_crash_field("tag:plan")
    for name in ("server_name", "vars", "abs_path", "user", "breadcrumbs", "extra", "tag:", "tag:a b"):
        assert not cr.is_crash_field(name), name
    for name in cr.NEVER_STORED:
        if name.startswith(cr.TAG_PREFIX):
            assert not cr.is_crash_field(name), name
            assert not cr.is_crash_field(name.upper().replace("TAG:", "tag:")), name


def test_the_schema_never_reads_what_is_never_stored() -> None:
    sources = " ".join(spec.source for spec in cr.CRASH_FIELDS)
    for name in cr.NEVER_STORED:
        if not name.startswith(cr.TAG_PREFIX):
            assert name.split("[]")[-1].lstrip(".") not in sources.split(), name


# ------------------------------------------------------------------------------------------------
# Events by hand: every never-stored part planted


SECRET = "S3CRET-VALUE"
FULL_EVENT: dict[str, Any] = {
    "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
    "timestamp": 1764547200.5,
    "level": "fatal",
    "platform": "javascript",
    "release": "notesync@2.0.0",
    "environment": "staging",
    "server_name": f"host-{SECRET}",
    "user": {"id": SECRET, "email": f"{SECRET}@example.com", "ip_address": "10.1.2.3"},
    "request": {"url": f"https://example.com/?t={SECRET}", "headers": {"Cookie": SECRET}},
    "breadcrumbs": {"values": [{"message": SECRET}]},
    "extra": {"note": SECRET},
    "modules": {SECRET: "1.0"},
    "threads": {"values": [{"stacktrace": {"frames": [{"vars": {"x": SECRET}}]}}]},
    "contexts": {
        "os": {"name": "Windows", "version": "11", "kernel_version": f"Linux {SECRET} 6.1", "build": SECRET},
        "runtime": {"name": "node", "version": "22.3.0"},
        "device": {"name": SECRET, "id": SECRET},
    },
    "tags": {"plan": "pro", "server_name": SECRET, "user.email": SECRET, "url": SECRET, "count": 3, "ok": True},
    "logentry": {"formatted": "sync failed", "params": [SECRET]},
    "exception": {
        "values": [
            {"type": "CauseError", "value": "cause"},
            {
                "type": "TypeError",
                "value": "x is undefined",
                "mechanism": {"type": "onerror", "handled": False, "data": {"k": SECRET}},
                "stacktrace": {
                    "frames": [
                        {
                            "filename": f"C:\\Users\\{SECRET}\\AppData\\notesync\\vendor.js",
                            "abs_path": f"C:\\Users\\{SECRET}\\AppData\\notesync\\vendor.js",
                            "function": "dispatch",
                            "lineno": 120,
                            "in_app": False,
                            "vars": {"token": SECRET},
                        },
                        {
                            "filename": f"/home/{SECRET}/notesync/app.js",
                            "function": "Object.<anonymous>",
                            "lineno": 7,
                            "in_app": True,
                            "pre_context": [SECRET],
                            "context_line": SECRET,
                        },
                        {"module": "sync:worker", "function": "ns::run:3", "in_app": True},
                    ]
                },
            },
        ]
    },
}


def test_a_full_event_gives_only_the_schema() -> None:
    values, dropped = cr.crash_fields(FULL_EVENT)
    assert SECRET not in json.dumps([values, dropped])
    assert values == {
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "timestamp": "2025-12-01T00:00:00.500000Z",
        "level": "fatal",
        "platform": "javascript",
        "release": "notesync@2.0.0",
        "environment": "staging",
        "exception_type": "TypeError",
        "exception_value": "x is undefined",
        "exception_handled": False,
        "message": "sync failed",
        "stack": "lib vendor.js:dispatch:120\napp app.js:Object.<anonymous>:7\napp sync.worker:ns::run:3:",
        "os_name": "Windows",
        "os_version": "11",
        "runtime_name": "node",
        "runtime_version": "22.3.0",
        "tag:plan": "pro",
        "tag:count": "3",
        "tag:ok": "true",
    }
    for name in (
        "server_name",
        "user",
        "request",
        "breadcrumbs",
        "extra",
        "modules",
        "threads",
        "contexts.device",
        "contexts.os.kernel_version",
        "contexts.os.build",
        "tag:server_name",
        "tag:user.email",
        "tag:url",
        "exception.values[:-1]",
        "exception.values[].mechanism",
        "exception.values[].stacktrace.frames[].vars",
        "exception.values[].stacktrace.frames[].abs_path",
        "exception.values[].stacktrace.frames[].filename",
        "exception.values[].stacktrace.frames[].context_line",
        "logentry.params",
    ):
        assert name in dropped, name
    assert dropped == sorted(set(dropped))


def test_the_stack_string_reads_back() -> None:
    stack = str(cr.crash_fields(FULL_EVENT)[0]["stack"])
    assert cr.stack_frames(stack) == [
        cr.Frame("vendor.js", "dispatch", 120, False),
        cr.Frame("app.js", "Object.<anonymous>", 7, True),
        cr.Frame("sync.worker", "ns::run:3", None, True),
    ]
    assert cr.app_frames_only(stack) == "app app.js:Object.<anonymous>:7\napp sync.worker:ns::run:3:"
    assert cr.stack_without_lines(stack).split("\n")[0] == "lib vendor.js:dispatch:"
    assert cr.STACK_COARSENINGS["no_lines"](stack) == cr.stack_without_lines(stack)
    assert cr.stack_without_lines("") == "" and cr.app_frames_only("") == ""


def test_a_long_stack_keeps_the_frames_nearest_the_crash() -> None:
    frames = [{"module": f"m{i}", "function": "f" * 150, "lineno": i} for i in range(200)]
    values, dropped = cr.crash_fields({"exception": {"values": [{"type": "E", "stacktrace": {"frames": frames}}]}})
    stack = str(values["stack"])
    assert len(stack) <= MAX_STRING
    kept = cr.stack_frames(stack)
    assert kept[-1].module == "m199" and len(kept) <= cr.MAX_FRAMES
    assert f"exception.values[].stacktrace.frames[:-{cr.MAX_FRAMES}]" in dropped


def test_free_text_is_cut_and_names_are_one_line() -> None:
    event = {"exception": {"values": [{"type": "Bad\nType\u2028X", "value": "v" * 5000}]}, "release": "r\x00"}
    values, _ = cr.crash_fields(event)
    assert values["exception_type"] == "Bad Type X"
    assert len(str(values["exception_value"])) == cr.MAX_FREE_TEXT
    assert values["release"] == "r"


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-11-24T10:00:00Z", "2026-11-24T10:00:00Z"),
        ("2026-11-24T10:00:00.123456", "2026-11-24T10:00:00.123456Z"),
        ("2026-11-24T12:00:00+02:00", "2026-11-24T10:00:00Z"),
        (1764547200, "2025-12-01T00:00:00Z"),
        ("yesterday", None),
        (1e300, None),
        (True, None),
    ],
)
def test_timestamps(stamp: object, expected: str | None) -> None:
    values, dropped = cr.crash_fields({"timestamp": stamp})
    assert values.get("timestamp") == expected
    assert ("timestamp" in dropped) == (expected is None)


@pytest.mark.parametrize("level", ["ERROR", "warning", "critical", 3])
def test_levels(level: object) -> None:
    values, dropped = cr.crash_fields({"level": level})
    known = isinstance(level, str) and level.lower() in cr.LEVELS
    assert values.get("level") == (str(level).lower() if known else None)
    assert ("level" in dropped) != known


def test_tags_as_pairs_and_bad_names() -> None:
    values, dropped = cr.crash_fields({"tags": [["plan", "pro"], ["bad name", "x"], ["IP", "1.2.3.4"]]})
    assert values == {"tag:plan": "pro"}
    assert "tags[]" in dropped and "tag:IP" in dropped


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30,
)
KEYS = st.sampled_from(["exception", "contexts", "tags", "timestamp", "level", "logentry", "message", "release"])


@given(st.dictionaries(KEYS | st.text(max_size=8), JSON, max_size=8))
@settings(max_examples=300, deadline=None)
def test_any_json_event_gives_scalars_and_names(event: dict[str, Any]) -> None:
    values, dropped = cr.crash_fields(event)
    for name, value in values.items():
        assert isinstance(value, str | int | float | bool), (name, value)
        assert not isinstance(value, str) or len(value) <= MAX_STRING
        assert cr.is_crash_field(name), name
    assert all(isinstance(name, str) for name in dropped)


# ------------------------------------------------------------------------------------------------
# Sessions


def test_a_session_counts_once_ended_and_drops_who() -> None:
    payload = {
        "sid": "s",
        "did": SECRET,
        "init": True,
        "started": "2026-11-24T10:00:00Z",
        "status": "exited",
        "errors": 1,
        "attrs": {"release": "photoedit@3.1.4", "environment": "production", "ip_address": SECRET},
    }
    rows, dropped = cr.session_counts(payload, "session")
    assert rows == [{"release": "photoedit@3.1.4", "environment": "production", "status": "errored", "count": 1}]
    assert {"did", "sid", "attrs.ip_address"} <= set(dropped)
    assert cr.session_counts(dict(payload, status="ok"), "session")[0] == []


def test_session_aggregates_are_summed() -> None:
    payload = {
        "aggregates": [
            {"started": "2026-11-24T10:00:00Z", "did": SECRET, "exited": 5, "crashed": 1},
            {"started": "2026-11-24T11:00:00Z", "exited": 2, "errored": True},
        ],
        "attrs": {"release": "photoedit@3.1.4"},
    }
    rows, dropped = cr.session_counts(payload, "sessions")
    assert rows == [
        {"release": "photoedit@3.1.4", "status": "exited", "count": 7},
        {"release": "photoedit@3.1.4", "status": "crashed", "count": 1},
    ]
    assert "did" in dropped and SECRET not in json.dumps(dropped)


def test_the_session_of_a_stock_sdk(tmp_path: Path) -> None:
    requests = run_sentry_script(planted_app(tmp_path), args=["session"], expect=2, brotli=False).requests
    sessions = [
        s for r in requests for s in se.sort_items(se.parse_envelope(se.decode_body(r.body, r.encoding))).sessions
    ]
    [(kind, payload)] = sessions
    rows, _ = cr.session_counts(payload, kind)
    assert rows == [{"release": "photoedit@3.1.4", "environment": "production", "status": "errored", "count": 1}]
