"""What a batch says (rules/batch_summary.py): the counts are the sent payload's, the findings
fire when they should and only then, and what delivered batches sent is read back right."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.builders import Clock, allowed, tiny
from tray_app.core import Broker, Manifest
from tray_app.core.rules import batch_summary
from tray_app.core.rules.batch_summary import (
    TOP_VALUES,
    Disclosure,
    EarlierValues,
    FindingKind,
    summarize,
    summarize_sent,
    value_label,
)
from tray_app.core.rules.columns import ReportColumns
from tray_app.core.rules.noise import SEED_BYTES
from tray_app.core.rules.payload import OTHER, BatchFrame, reference_render, value_key
from tray_app.core.rules.reports import Report
from tray_app.core.rules.scope import Scope, check_scope
from tray_app.core.rules.sent_values import earlier_values, match_key, sent_values
from tray_app.core.rules.vendor_body import reference_vendor_body, vendor_body

SEED = bytes(range(SEED_BYTES))
FRAME = BatchFrame("org.example.tiny", "b1", 1, "2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z")
FIELDS: list[dict[str, Any]] = [
    {"name": "s", "type": "string", "description": "s"},
    {"name": "i", "type": "integer", "description": "i"},
    {"name": "x", "type": "number", "description": "x"},
    {"name": "b", "type": "boolean", "description": "b", "noise": 2.0},
    {"name": "t", "type": "timestamp", "description": "t"},
    {"name": "v", "type": "version", "description": "v"},
    {"name": "e", "type": "enum", "values": ["a", "b", "c"], "description": "e", "noise": 1.0},
    {"name": "who", "type": "string", "description": "The signed-in account", "sensitivity": "identifying"},
    {"name": "iid", "type": "string", "description": "A random install id", "sensitivity": "pseudonymous"},
]
LEVELS = {"i": ["bucket"], "x": ["bucket"], "t": ["hour", "day", "week", "month"], "v": ["major", "minor"]}
NOISY = ("b", "e")

_ts = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
)
# Few distinct values, so that counts repeat, ties happen and min_count folds something.
_values: dict[str, st.SearchStrategy[Any]] = {
    "s": st.sampled_from(["", "a", "b", "(other)", "é", "\u202e"]) | st.text(max_size=3),
    "i": st.integers(-3, 40),
    "x": st.sampled_from([0.5, 1.0, 2.25, -3.5, 7.0]) | st.integers(-5, 5),
    "b": st.booleans(),
    "t": st.sampled_from(["2026-11-24T10:00:00Z", "2026-11-24T10:40:05Z", "2026-11-25T23:59:59Z"]) | _ts,
    "v": st.sampled_from(["3.1.4", "3.1.3", "3.0", "10"]),
    "e": st.sampled_from(["a", "b", "c"]),
    "who": st.sampled_from(["ann@example.org", "bob@example.org"]),
    "iid": st.sampled_from(["1f2e", "9a9a"]),
}
_report = st.fixed_dictionaries({}, optional=_values)


@st.composite
def _scope(draw: st.DrawFn) -> Scope:
    fields = draw(st.lists(st.sampled_from(list(_values)), unique=True))
    coarsen = {f: draw(st.sampled_from(LEVELS[f])) for f in fields if f in LEVELS and draw(st.booleans())}
    noise = {f: draw(st.sampled_from([0.5, 1.0])) for f in fields if f in NOISY and draw(st.booleans())}
    mode = draw(st.sampled_from(["records", "aggregate"]))
    return Scope(tuple(fields), coarsen, mode, noise)


def _manifest(min_count: int = 2, **overrides: Any) -> Manifest:
    return tiny(fields=FIELDS, min_count=min_count, **overrides)


def _columns(m: Manifest, reports: list[Report]) -> ReportColumns:
    return ReportColumns.decode(m, [json.dumps(r) for r in reports], noise_seed=SEED)


def _brute_force(obj: dict[str, Any], name: str) -> Counter[str]:
    """How often the payload sends each value of ``name``: counted by hand from its object."""
    if "aggregates" in obj:
        return Counter(obj["aggregates"][name])
    return Counter(value_key(r[name]) for r in obj["reports"] if name in r)


def _expected_top(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_VALUES]


# -- the counts are what is sent --------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    reports=st.lists(_report, max_size=40),
    scopes=st.lists(_scope(), min_size=1, max_size=3),
    min_count=st.integers(2, 5),
)
def test_the_counts_are_the_reference_payloads(reports: list[Report], scopes: list[Scope], min_count: int) -> None:
    m = _manifest(min_count)
    columns = _columns(m, reports)
    for scope in [*scopes, scopes[0]]:  # the last one from what the first left kept
        check_scope(scope, m)
        obj = reference_render(FRAME, m, scope, reports, noise_seed=SEED).obj()
        summary = summarize(columns, m, scope, EarlierValues())
        assert summary.mode == scope.mode and summary.reports == len(reports)
        assert sorted(f.name for f in summary.fields) == list(scope.fields)
        for f in summary.fields:
            counts = _brute_force(obj, f.name)
            named = [v for v in counts if not (scope.mode == "aggregate" and v == OTHER)]
            assert f.distinct == len(named), f
            assert f.reports == sum(counts.values())
            assert list(f.top) == _expected_top(counts)
            assert f.other == f.reports - sum(n for _, n in f.top)
            assert f.noise == scope.noise.get(f.name)
        shape = summary.to_obj()
        assert set(shape) == {"fields", "linkable_by"} and set(shape["fields"]) == set(scope.fields)
        for name, field in shape["fields"].items():
            assert field["top"] == [list(top) for top in _expected_top(_brute_force(obj, name))]


@settings(max_examples=150, deadline=None)
@given(
    reports=st.lists(_report, max_size=30),
    scope=_scope(),
    wire=st.sampled_from(["telemetry-tray", "otlp"]),
    min_count=st.integers(2, 4),
)
def test_sent_values_read_back_what_vendor_body_rendered(
    reports: list[Report], scope: Scope, wire: str, min_count: int
) -> None:
    m = _manifest(min_count, format=wire)
    check_scope(scope, m)
    columns = _columns(m, reports)
    body = vendor_body(columns, FRAME, m, scope).body  # what approval stores
    assert body == reference_vendor_body(FRAME, m, scope, reports, noise_seed=SEED).body
    sent = sent_values(body, m)
    assert sent.mode == scope.mode
    if scope.mode == "records":
        assert sent.records == len(reports)
    for name in scope.fields:
        expected = columns.value_counts(name, scope)
        if scope.mode == "aggregate":
            expected = Counter(columns.aggregates(scope, min_count)[name])
        kind = m.field(name).type  # type: ignore[union-attr]
        # OTLP sends a number field as a double (3 as 3.0): the same value, spelt its way.
        got = Counter({match_key(kind, v): n for v, n in sent.counts.get(name, {}).items()})
        assert got == Counter({match_key(kind, v): n for v, n in expected.items()}), name
    # And the summary of what was sent is the summary of what was to be sent.
    live = summarize(columns, m, scope, EarlierValues())
    stored = summarize_sent(sent, m, scope, EarlierValues(), reports=len(reports))
    if wire == "telemetry-tray":
        assert stored.to_obj() == live.to_obj()
    assert [f.name for f in stored.fields] == [f.name for f in live.fields]


def test_otlp_logs_map_fields_back_through_their_sources() -> None:
    fields = [
        {"name": "when", "type": "timestamp", "description": "w", "source": "time"},
        {"name": "what", "type": "string", "description": "w", "source": "event_name"},
        {"name": "level", "type": "enum", "values": ["INFO", "WARN"], "description": "l", "source": "severity"},
        {"name": "text", "type": "string", "description": "t", "source": "body"},
        {"name": "host", "type": "string", "description": "h", "source": "resource:host.name"},
        {"name": "n", "type": "number", "description": "n"},
    ]
    m = tiny(fields=fields, format="otlp")
    reports: list[Report] = [
        {"when": "2026-11-24T10:00:00Z", "what": "open", "level": "WARN", "text": "hi", "host": "pc", "n": 3},
        {"when": "2026-11-24T11:00:00.250000Z", "what": "open", "level": "INFO", "text": "", "n": 2.5},
    ]
    scope = Scope(tuple(f["name"] for f in fields))
    sent = sent_values(reference_vendor_body(FRAME, m, scope, reports).body, m)
    assert sent.counts == {
        "when": {"2026-11-24T10:00:00Z": 1, "2026-11-24T11:00:00.250000Z": 1},
        "what": {"open": 2},
        "level": {"WARN": 1, "INFO": 1},
        "text": {"hi": 1, "": 1},
        "host": {"pc": 1},
        "n": {"3.0": 1, "2.5": 1},  # a number goes as a double
    }


def test_a_payload_of_more_records_than_one_otlp_request_holds_is_read_whole() -> None:
    m = tiny(fields=[{"name": "s", "type": "string", "description": "s"}], format="otlp")
    reports: list[Report] = [{"s": str(i % 3)} for i in range(25_000)]
    sent = sent_values(reference_vendor_body(FRAME, m, Scope(("s",)), reports).body, m)
    assert sent.records == 25_000 and sum(sent.counts["s"].values()) == 25_000


def test_a_payload_that_is_neither_format_is_refused() -> None:
    from tray_app.core.errors import MalformedError

    for body in (b"[]", b"{}", b"not json", b'{"reports":[1]}'):
        with pytest.raises(MalformedError):
            sent_values(body, _manifest())


def test_match_key_spells_equal_numbers_alike_and_nothing_else() -> None:
    assert match_key("number", "3.0") == match_key("number", "3") == "3"
    assert match_key("number", "2.5") == "2.5"
    assert match_key("integer", "9007199254740993") == "9007199254740993"  # past 2**53: kept exact
    assert match_key("string", "3.0") == "3.0"
    assert match_key("number", "1e+16") == "1e+16"  # not below 2**53: left as it is


# -- ordering ---------------------------------------------------------------------------


def _summary(reports: list[Report], scope: Scope, earlier: EarlierValues | None = None, **kw: Any) -> Disclosure:
    m = _manifest(kw.pop("min_count", 5))
    return summarize(_columns(m, reports), m, check_scope(scope, m), earlier or EarlierValues(), **kw)


def test_identifying_and_pseudonymous_fields_and_stable_ids_come_first() -> None:
    reports: list[Report] = [{"s": "same", "i": 1, "who": "ann@example.org", "iid": "1f2e", "e": "a"}] * 3
    earlier = EarlierValues({"s": {"same": 1}, "iid": {"1f2e": 1}}, compared=1)
    summary = _summary(reports, Scope(("e", "i", "iid", "s", "who")), earlier)
    assert [f.name for f in summary.fields] == ["who", "iid", "s", "e", "i"]
    assert summary.linkable_by == ("iid", "s")
    kinds = [finding.kind for finding in summary.findings]
    assert kinds == sorted(kinds, key=list(FindingKind).index)
    assert [f.field for f in summary.findings if f.kind == FindingKind.IDENTIFYING] == ["who", "iid"]


# -- the findings -----------------------------------------------------------------------


def test_identifying_says_what_the_field_is() -> None:
    summary = _summary([{"who": "ann@example.org"}], Scope(("who",)))
    (finding,) = summary.findings
    assert finding.kind == FindingKind.IDENTIFYING and finding.field == "who"
    assert "The signed-in account" in finding.text and "who you are" in finding.text
    assert not _summary([{"s": "x"}], Scope(("s",))).findings
    assert not _summary([{"s": "x"}], Scope(("who",))).findings  # included, but nothing sent


@pytest.mark.parametrize(
    ("name", "value", "links"),
    [
        ("s", "host-7", True),
        ("i", 1920, True),
        ("x", 2.5, True),
        ("iid", "1f2e", True),
        ("b", True, False),  # everyone's booleans look alike
        ("e", "a", False),
        ("v", "3.1.4", False),
        ("t", "2026-11-24T10:00:00Z", False),
    ],
)
def test_only_values_that_can_single_someone_out_link(name: str, value: Any, links: bool) -> None:
    kind = {f["name"]: f["type"] for f in FIELDS}[name]
    earlier = EarlierValues({name: {match_key(kind, value_key(value)): 2}}, compared=2)
    summary = _summary([{name: value}] * 4, Scope((name,)), earlier)
    assert summary.linkable_by == ((name,) if links else ())
    texts = [f.text for f in summary.findings if f.kind == FindingKind.LINKS_EARLIER]
    assert texts == ([texts[0]] if links else [])
    if links:
        assert "links this batch to the 2 you sent before" in texts[0]


def test_a_link_needs_one_value_in_every_report_and_that_value_sent_before() -> None:
    earlier = EarlierValues({"s": {"host-7": 1}}, compared=3)
    assert _summary([{"s": "host-7"}] * 3, Scope(("s",)), earlier).linkable_by == ("s",)
    text = _summary([{"s": "host-7"}] * 3, Scope(("s",)), earlier).findings[0].text
    assert "links this batch to 1 of the 3 you sent before" in text and "'host-7'" in text
    assert _summary([{"s": "host-7"}, {"s": "host-8"}], Scope(("s",)), earlier).linkable_by == ()
    assert _summary([{"s": "host-8"}] * 3, Scope(("s",)), earlier).linkable_by == ()
    assert _summary([{"s": "host-7"}, {}], Scope(("s",)), earlier).linkable_by == ("s",)  # of the reports with it
    # Bucketed, a number is one of few shared values.
    numbers = EarlierValues({"i": {"16": 1}}, compared=1)
    assert _summary([{"i": 16}] * 3, Scope(("i",)), numbers).linkable_by == ("i",)
    assert _summary([{"i": 16}] * 3, Scope(("i",), {"i": "bucket"}), numbers).linkable_by == ()


def test_nearly_unique_strings_read_as_free_text_or_an_id() -> None:
    titles: list[Report] = [{"s": f"title {i}"} for i in range(24)] + [{"s": "title 0"}]
    (finding,) = _summary(titles, Scope(("s",))).findings
    assert finding.kind == FindingKind.NEARLY_UNIQUE
    assert finding.text == "s has 24 different values in 25 reports: it may be free text or an id."
    assert not _summary(titles[:9], Scope(("s",))).findings  # 9 reports say nothing yet
    fewer: list[Report] = [{"s": f"t{i % 22}"} for i in range(25)]  # 22 in 25: 0.88
    assert not _summary(fewer, Scope(("s",))).findings
    assert not _summary([{"i": i} for i in range(25)], Scope(("i",))).findings  # numbers vary by nature


def test_active_hours_in_the_persons_zone_until_coarsened_to_the_day() -> None:
    reports: list[Report] = [
        {"t": "2026-11-24T07:15:00Z"},
        {"t": "2026-11-24T08:59:59Z"},
        {"t": "2026-11-24T21:30:00Z"},
        {"t": "2026-11-24T22:10:00Z"},
    ]
    plus_two = timezone(timedelta(hours=2))
    (finding,) = _summary(reports, Scope(("t",)), zone=plus_two).findings
    assert finding.kind == FindingKind.ACTIVE_HOURS
    assert "between 09:00-11:00 and 23:00-01:00" in finding.text and "UTC+02:00" in finding.text
    (hourly,) = _summary(reports, Scope(("t",), {"t": "hour"}), zone=UTC).findings
    assert "between 07:00-09:00 and 21:00-23:00 (UTC time)" in hourly.text
    for level in ("day", "week", "month"):
        assert not _summary(reports, Scope(("t",), {"t": level}), zone=plus_two).findings
    # A zone off by half an hour: read to the minute.
    india = timezone(timedelta(hours=5, minutes=30))
    (odd,) = _summary(
        [{"t": "2026-11-24T10:40:00Z"}, {"t": "2026-11-24T10:10:00Z"}], Scope(("t",)), zone=india
    ).findings
    assert "between 15:00-17:00" in odd.text


def test_the_same_columns_in_another_zone_are_not_served_the_first_zones_hours() -> None:
    m = _manifest()
    columns = _columns(m, [{"t": "2026-11-24T10:00:00Z"}])
    first = summarize(columns, m, Scope(("t",)), EarlierValues(), zone=UTC)
    second = summarize(columns, m, Scope(("t",)), EarlierValues(), zone=timezone(timedelta(hours=-5)))
    assert "10:00-11:00" in first.findings[0].text and "05:00-06:00" in second.findings[0].text


def test_counts_are_the_summary_and_folding_is_said() -> None:
    reports: list[Report] = [{"e": "a"}] * 6 + [{"e": "b"}] * 3 + [{"e": "c"}] * 2 + [{"s": "rare"}] * 3
    summary = _summary(reports, Scope(("e", "s"), mode="aggregate"))
    e = summary.field("e")
    assert e is not None and e.top == (("a", 6), (OTHER, 5)) and e.distinct == 1 and e.other == 0
    s = summary.field("s")
    assert s is not None and s.top == () and s.reports == 0
    folded = {f.field: f.text for f in summary.findings if f.kind == FindingKind.FOLDED}
    assert "values seen fewer than 5 times are counted together as (other) (5 reports)" in folded["e"]
    assert "least common" not in folded["e"]
    assert folded["s"] == "s is in fewer than 5 reports, so none of its counts is sent."
    # The least common shown values join (other) when it is itself below min_count.
    joined = _summary([{"e": "a"}] * 6 + [{"e": "b"}] * 5 + [{"e": "c"}], Scope(("e",), mode="aggregate"))
    assert joined.field("e").top == ((OTHER, 6), ("a", 6))  # type: ignore[union-attr]  # ties by value
    assert "and the least common others" in joined.findings[0].text
    # As records, nothing folds.
    assert not [f for f in _summary(reports, Scope(("e", "s"))).findings if f.kind == FindingKind.FOLDED]


def test_purged_earlier_batches_are_counted_and_said() -> None:
    summary = _summary([{"s": "x"}], Scope(("s",)), EarlierValues({}, compared=1, purged=2))
    assert summary.purged_batches == 2 and summary.compared_batches == 1
    (finding,) = summary.findings
    assert finding.kind == FindingKind.PURGED_EARLIER and finding.field is None
    assert finding.text.startswith("2 earlier batches you sent are no longer kept here")
    assert not _summary([{"s": "x"}], Scope(("s",)), EarlierValues({}, compared=1)).findings


def test_to_obj_is_designs_shape_exactly() -> None:
    summary = _summary([{"s": "a", "i": 3}, {"s": "a"}], Scope(("i", "s")), EarlierValues({"s": {"a": 1}}, 1))
    assert summary.to_obj() == {
        "fields": {"s": {"distinct": 1, "top": [["a", 2]]}, "i": {"distinct": 1, "top": [["3", 1]]}},
        "linkable_by": ["s"],
    }


def test_values_are_shown_safely() -> None:
    assert value_label("string", "\u202eevil", mode="records") == "'\\u202eevil'"
    assert value_label("integer", "42", mode="records") == "42"
    assert value_label("string", OTHER, mode="aggregate") == OTHER
    assert value_label("string", OTHER, mode="records") == "'(other)'"  # a real value spelt so
    assert len(value_label("string", "x" * 500, mode="records")) == batch_summary.SHOWN_CHARS


def test_earlier_values_count_batches_not_reports() -> None:
    earlier = earlier_values([{"s": frozenset({"a", "b"})}, {"s": frozenset({"a"})}], purged=1)
    assert earlier.values == {"s": {"a": 2, "b": 1}} and earlier.compared == 2 and earlier.purged == 1


# -- through the broker: earlier delivered batches, purged ones, the cache --------------

INSTALL = {"name": "install_id", "type": "string", "description": "A random install id", "sensitivity": "pseudonymous"}
APP_FIELDS = [
    {"name": "event", "type": "string", "description": "what"},
    INSTALL,
    {"name": "ts", "type": "timestamp", "description": "when"},
]


def _app(broker: Broker, **overrides: Any) -> Manifest:
    m = tiny(fields=APP_FIELDS, **overrides)
    allowed(broker, m)
    return m


def _with_id(broker: Broker) -> Scope:
    return broker.batch_scope(_pending(broker)).edited(broker.app("org.example.tiny").manifest, include=["install_id"])


def _pending(broker: Broker) -> str:
    (batch,) = broker.pending()
    return batch.batch_id


def _send_batch(broker: Broker, clock: Clock, install_id: str, *, deliver: bool = True) -> str:
    broker.ingest("org.example.tiny", [{"event": "open", "install_id": install_id, "ts": "2026-11-24T10:00:00Z"}] * 3)
    broker.close_batches(force=True)
    batch = _pending(broker)
    broker.approve(batch, _with_id(broker))
    if deliver:
        for claim in broker.deliveries.claim("test"):
            broker.deliveries.finish(claim, status=200)
    clock.advance(hours=1)
    return batch


@pytest.mark.parametrize("wire", ["telemetry-tray", "otlp"])
def test_a_constant_install_id_sent_in_three_earlier_batches_links(broker: Broker, clock: Clock, wire: str) -> None:
    _app(broker, format=wire)
    for _ in range(3):
        _send_batch(broker, clock, "1f2e")
    _send_batch(broker, clock, "1f2e", deliver=False)  # approved, not delivered: the vendor has not got it
    broker.ingest("org.example.tiny", [{"event": "crop", "install_id": "1f2e"}] * 2)
    broker.close_batches(force=True)
    view = broker.view(_pending(broker), _with_id(broker))
    assert view.summary is not None and view.summary.linkable_by == ("install_id",)
    assert view.summary.compared_batches == 3
    (link,) = [f for f in view.summary.findings if f.kind == FindingKind.LINKS_EARLIER]
    assert link.field == "install_id" and "links this batch to the 3 you sent before" in link.text
    assert view.to_obj()["summary"]["linkable_by"] == ["install_id"]
    # Left out, it links nothing; another install's id links nothing either.
    assert broker.view(_pending(broker)).summary.linkable_by == ()  # type: ignore[union-attr]


def test_a_new_install_id_does_not_link(broker: Broker, clock: Clock) -> None:
    _app(broker)
    _send_batch(broker, clock, "1f2e")
    broker.ingest("org.example.tiny", [{"event": "crop", "install_id": "9a9a"}] * 2)
    broker.close_batches(force=True)
    summary = broker.view(_pending(broker), _with_id(broker)).summary
    assert summary is not None and summary.linkable_by == () and summary.compared_batches == 1


def test_purged_earlier_batches_are_not_compared_and_are_said(broker: Broker, clock: Clock) -> None:
    _app(broker)
    _send_batch(broker, clock, "1f2e")
    _send_batch(broker, clock, "1f2e")
    broker.ingest("org.example.tiny", [{"event": "crop", "install_id": "1f2e"}] * 2)
    broker.close_batches(force=True)
    assert broker.view(_pending(broker), _with_id(broker)).summary.linkable_by == ("install_id",)  # type: ignore[union-attr]
    broker.discard(_pending(broker))
    clock.advance(days=31)
    assert len(broker.apply_retention().purged) == 2
    broker.ingest("org.example.tiny", [{"event": "crop", "install_id": "1f2e"}] * 2)
    broker.close_batches(force=True)
    summary = broker.view(_pending(broker), _with_id(broker)).summary
    assert summary is not None
    assert summary.linkable_by == () and summary.compared_batches == 0 and summary.purged_batches == 2
    assert any(f.kind == FindingKind.PURGED_EARLIER and f.text.startswith("2 earlier") for f in summary.findings)


def test_the_history_shows_the_summary_of_what_was_sent(broker: Broker, clock: Clock) -> None:
    _app(broker)
    _send_batch(broker, clock, "1f2e")
    broker.ingest(
        "org.example.tiny", [{"event": "open", "install_id": "1f2e"}, {"event": "crop", "install_id": "1f2e"}]
    )
    broker.close_batches(force=True)
    batch, scope = _pending(broker), _with_id(broker)
    before = broker.view(batch, scope).summary
    broker.approve(batch, scope)
    for claim in broker.deliveries.claim("test"):
        broker.deliveries.finish(claim, status=200)
    after = broker.view(batch).summary
    assert before is not None and after is not None
    assert after.to_obj() == before.to_obj() and after.linkable_by == ("install_id",)
    assert after.findings == before.findings and after.reports == 2
    assert broker.sent_summary(batch) == after
    # A discarded batch sent nothing: nothing to summarise.
    broker.ingest("org.example.tiny", [{"event": "open"}])
    broker.close_batches(force=True)
    gone = broker.discard(_pending(broker))
    assert gone.summary is None and gone.to_obj()["summary"] is None
    assert broker.sent_summary(gone.batch.batch_id) is None


def test_the_cache_reads_each_payload_once_and_never_for_another_batch(
    broker: Broker, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tray_app.core import earlier_batches

    reads: list[bytes] = []
    real = earlier_batches.sent_values

    def counting(body: bytes, manifest: Manifest) -> Any:
        reads.append(body)
        return real(body, manifest)

    monkeypatch.setattr(earlier_batches, "sent_values", counting)
    _app(broker)
    first = _send_batch(broker, clock, "aaaa")
    second = _send_batch(broker, clock, "bbbb")
    broker.ingest("org.example.tiny", [{"event": "crop", "install_id": "bbbb"}])
    broker.close_batches(force=True)
    reads.clear()
    for _ in range(3):
        summary = broker.view(_pending(broker), _with_id(broker)).summary
        assert summary is not None and summary.linkable_by == ("install_id",)
        if len(reads) > 2:
            break
    # Each delivered payload parsed at most once (the approvals' own views read some already),
    # however often the review opens.
    assert len(reads) <= 2 and len(set(reads)) == len(reads)
    # Each batch's own summary is of its own bytes, asked in any order, again and again.
    for batch, install_id in [(first, "aaaa"), (second, "bbbb"), (first, "aaaa"), (second, "bbbb")]:
        sent = broker.sent_summary(batch)
        assert sent is not None and sent.field("install_id").top == ((install_id, 3),)  # type: ignore[union-attr]
        assert broker.view(batch).summary == sent
    # The second compares with the first only (decided before it), the first with none.
    assert broker.sent_summary(first).compared_batches == 0  # type: ignore[union-attr]
    assert broker.sent_summary(second).compared_batches == 1  # type: ignore[union-attr]
    assert broker.sent_summary(second).linkable_by == ("event",)  # type: ignore[union-attr]  # "open" both times


def test_timestamps_at_the_ends_of_the_calendar_never_stop_a_summary() -> None:
    # 9999-12-31T23:59Z is a valid report time; east of UTC it is past the calendar's end.
    reports: list[Report] = [
        {"t": "9999-12-31T23:59:00Z"}, {"t": "0001-01-01T00:00:00Z"}, {"t": "2026-11-24T10:00:00Z"}
    ]  # fmt: skip
    for zone in (timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))):
        summary = _summary(reports, Scope(("t",)), zone=zone)
        assert summary.field("t") is not None and summary.field("t").reports == 3  # type: ignore[union-attr]
        (finding,) = summary.findings  # the one hour that can be told, in that zone
        assert finding.kind == FindingKind.ACTIVE_HOURS
