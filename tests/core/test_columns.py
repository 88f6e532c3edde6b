"""The column renderer gives exactly the reference renderer's bytes, and the broker's
kept preview never shows reports that are not (or no longer) the batch's."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support.builders import allowed, tiny
from tray_app.core.broker import Broker
from tray_app.core.platform.paths import Locations
from tray_app.core.rules.columns import ReportColumns
from tray_app.core.rules.noise import MIN_EPSILON
from tray_app.core.rules.payload import BatchFrame, reference_render
from tray_app.core.rules.reports import Report
from tray_app.core.rules.scope import Scope, check_scope

from .test_scope_payload import FIELDS, FRAME, LEVELS, _scope, _ts

# Values as they are stored, and some no validated report has (1.0 beside 1, -0.0,
# floats past 2**53 beside the equal integer): the renderer must not mix them up.
_number = st.one_of(
    st.integers(-(2**62), 2**62),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e17, max_value=1e17),
    st.sampled_from([0, 0.0, -0.0, 1, 1.0, True, 2**53, float(2**53), 10**16, 1e16]),
)
_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=8) | st.sampled_from(
    ["", "\x00", '"', "\\", "a,}", "\u2028", "é", "😀", '{"x":1}', "\x1f"]
)
_values: dict[str, st.SearchStrategy[Any]] = {
    "s": _text,
    "i": st.integers(-(2**62), 2**62),
    "x": _number,
    "b": st.booleans(),
    "t": _ts | st.sampled_from(["2026-11-24T13:05:09.250Z", "2026-11-24T13:05:09+02:00"]),
    "v": st.from_regex(r"\A\d{1,3}(\.\d{1,3}){0,2}\Z"),
    "e": st.sampled_from(["a", "b", "c"]),
    "who": _text,
}
_report = st.fixed_dictionaries({}, optional=_values)

# Noise (rules/noise.py): the scope tests' FIELDS with noise offered on the boolean and the
# enum, a batch's seed, and scopes that add noise to some of those fields.
SEED = hashlib.sha256(b"test_columns: a fixed seed").digest()
OFFERS = {"b": 1.0, "e": 2.0}
NOISY_FIELDS: list[dict[str, Any]] = [
    {**field, "noise": OFFERS[field["name"]]} if field["name"] in OFFERS else field for field in FIELDS
]


@st.composite
def _noisy_scope(draw: st.DrawFn) -> Scope:
    """A scope of the scope tests, with noise on some of the fields that offer it."""
    base = draw(_scope())
    noise = {
        name: draw(st.sampled_from([MIN_EPSILON, 0.5, offer]))
        for name, offer in OFFERS.items()
        if name in base.fields and draw(st.booleans())
    }
    return Scope(base.fields, base.coarsen, base.mode, noise)


def _both(reports: list[Report], scope: Scope, min_count: int = 2) -> tuple[bytes, bytes]:
    m = tiny(fields=NOISY_FIELDS, min_count=min_count)
    check_scope(scope, m)
    columns = ReportColumns.decode(m, [json.dumps(r) for r in reports], noise_seed=SEED)
    fast = columns.render(FRAME, m, scope)
    again = columns.render(FRAME, m, scope)  # from the pieces it kept
    assert again == fast
    return fast.body, reference_render(FRAME, m, scope, reports, noise_seed=SEED).body


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(reports=st.lists(_report, max_size=30), scope=_noisy_scope(), min_count=st.integers(2, 5))
@example(reports=[{"x": 1}, {"x": 1.0}, {"x": True}, {"x": -0.0}, {"x": 0}], scope=Scope(("x",)), min_count=2)
@example(reports=[{"x": 10**16}, {"x": 1e16}], scope=Scope(("x",), mode="aggregate"), min_count=2)
@example(reports=[{}, {"s": "a"}, {"b": True}], scope=Scope(("b", "s")), min_count=2)
@example(reports=[{"s": "\x00,"}, {}], scope=Scope(("e", "s")), min_count=2)
@example(reports=[{}, {"b": True}, {"e": "a", "b": False}], scope=Scope(("b", "e"), noise={"b": 1.0}), min_count=2)
@example(
    reports=[{"e": "c"}] * 7 + [{"e": "a", "b": True}] * 3,
    scope=Scope(("b", "e"), mode="aggregate", noise={"e": 0.1, "b": 0.5}),
    min_count=2,
)
def test_columns_render_the_reference_bytes(reports: list[Report], scope: Scope, min_count: int) -> None:
    fast, reference = _both(reports, scope, min_count)
    assert fast == reference


@settings(max_examples=100, deadline=None)
@given(reports=st.lists(_report, min_size=1, max_size=30), data=st.data())
def test_one_columns_object_renders_many_scopes(reports: list[Report], data: st.DataObject) -> None:
    m = tiny(fields=NOISY_FIELDS)
    columns = ReportColumns.decode(m, [json.dumps(r) for r in reports], noise_seed=SEED)
    for _ in range(4):
        scope = data.draw(_noisy_scope())
        check_scope(scope, m)
        reference = reference_render(FRAME, m, scope, reports, noise_seed=SEED)
        assert columns.render(FRAME, m, scope).body == reference.body


def test_every_coarsening_level_matches() -> None:
    reports: list[Report] = [
        {"t": "2026-11-24T13:05:09Z", "i": 700, "x": 3.5, "v": "3.1.4-rc1+build"},
        {"t": "2026-11-23T23:59:59Z", "i": -5, "x": -0.25, "v": "10.2"},
        {"i": 0, "x": 1e16},
    ]
    for name, levels in LEVELS.items():
        for level in levels:
            for mode in ("records", "aggregate"):
                scope = Scope((name, "i"), {name: level}, mode)  # type: ignore[arg-type]
                fast, reference = _both(reports, scope)
                assert fast == reference, (name, level, mode)


def test_an_empty_batch_and_an_empty_scope() -> None:
    assert _both([], Scope(("s",)))[0] == _both([], Scope(("s",)))[1]
    fast, reference = _both([{"s": "a"}, {}], Scope(()))
    assert fast == reference
    assert b'"reports":[{},{}]' in fast


# -- the broker's kept preview ---------------------------------------------------------


def _open_broker(tmp_path: Path) -> tuple[Broker, str]:
    moment = datetime(2026, 11, 24, 12, tzinfo=UTC)
    broker = Broker.open(Locations.under(tmp_path / "home"), lambda: moment)
    manifest = tiny(fields=[{"name": "s", "type": "string", "description": "s"}])
    allowed(broker, manifest)
    return broker, manifest.app_id


def test_a_kept_preview_sees_reports_that_arrive_later(tmp_path: Path) -> None:
    broker, app_id = _open_broker(tmp_path)
    batch_id = broker.ingest(app_id, [{"s": "first"}]).batch_id
    assert batch_id is not None
    first = broker.view(batch_id)
    broker.ingest(app_id, [{"s": "second"}])
    second = broker.view(batch_id)
    assert first.payload is not None and second.payload is not None
    assert b"second" in second.payload.body and b"second" not in first.payload.body
    assert second.reports == 2


def test_approval_sends_what_the_kept_preview_showed(tmp_path: Path) -> None:
    broker, app_id = _open_broker(tmp_path)
    batch_id = broker.ingest(app_id, [{"s": str(i)} for i in range(50)]).batch_id
    assert batch_id is not None
    broker.close_batches(force=True)
    narrowed = Scope(())
    shown = broker.view(batch_id, narrowed).payload
    assert shown is not None
    approved = broker.approve(batch_id, narrowed, expected_sha256=shown.sha256)
    assert approved.payload == shown
    # The decided batch's reports are gone, and so are the decoded ones kept for it.
    assert broker.previews.kept_batch is None
    assert broker.store.report_stamp(batch_id) == (0, 0)


def test_forget_preview_lets_go_of_the_decoded_reports(tmp_path: Path) -> None:
    broker, app_id = _open_broker(tmp_path)
    batch_id = broker.ingest(app_id, [{"s": "a"}]).batch_id
    assert batch_id is not None
    broker.view(batch_id)
    assert broker.previews.kept_batch == batch_id
    broker.forget_preview()
    assert broker.previews.kept_batch is None
    assert broker.view(batch_id).payload is not None


def test_a_frame_is_the_batch_it_renders() -> None:
    m = tiny(fields=FIELDS)
    columns = ReportColumns.decode(m, ['{"s":"a"}'])
    other = BatchFrame("org.example.tiny", "b2", 1, "2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z")
    body = columns.render(other, m, Scope(("s",))).body
    assert json.loads(body)["batch_id"] == "b2"
    assert body == reference_render(other, m, Scope(("s",)), [{"s": "a"}]).body
