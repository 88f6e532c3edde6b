"""Noise (randomized response): the offer in the manifest, the scope's choice, the draw, the
bytes it renders to by both paths and both wire formats, the vendor's estimator, and the
broker's promise that what the preview showed is what approval stores."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.builders import Clock, allowed, tiny
from tray_app.core import Broker
from tray_app.core.errors import ManifestError, ScopeError
from tray_app.core.rules.columns import MISSING, ReportColumns
from tray_app.core.rules.manifest import Manifest, diff_manifests, parse_manifest
from tray_app.core.rules.noise import (
    MAX_EPSILON,
    MIN_EPSILON,
    NoiseDraw,
    estimate_counts,
    keep_probability,
    noise_in_words,
    other_probability,
    standard_error,
)
from tray_app.core.rules.payload import OTHER, canonical_bytes, reference_render, value_key
from tray_app.core.rules.reports import Report
from tray_app.core.rules.scope import Scope, carry_scope, check_scope, fit_scope, scope_fields_in_words
from tray_app.core.rules.vendor_body import reference_vendor_body, vendor_body

from .test_columns import NOISY_FIELDS, SEED, _noisy_scope, _report
from .test_scope_payload import FIELDS, FRAME

OTHER_SEED = hashlib.sha256(b"test_noise: another batch").digest()
DOMAIN: dict[str, tuple[Any, ...]] = {"b": (False, True), "e": ("a", "b", "c")}


def _m(**overrides: Any) -> Manifest:
    return tiny(**{"fields": NOISY_FIELDS, **overrides})


# -- the manifest's offer ----------------------------------------------------------------


def test_a_manifest_offers_noise_on_boolean_and_enum_fields() -> None:
    m = _m()
    assert m.field("b").noise == 1.0 and m.field("e").noise == 2.0  # type: ignore[union-attr]
    assert m.field("s").noise is None  # type: ignore[union-attr]
    # A whole number is the same offer, stored as a float.
    fields = [{"name": "g", "type": "boolean", "description": "g", "noise": 1}]
    assert tiny(fields=fields).field("g").noise == 1.0  # type: ignore[union-attr]
    assert tiny(fields=fields).to_obj()["fields"][0]["noise"] == 1.0
    assert isinstance(tiny(fields=fields).to_obj()["fields"][0]["noise"], float)


def test_a_manifest_without_noise_keeps_its_stored_text() -> None:
    text = tiny(fields=FIELDS).to_json()
    assert '"noise"' not in text
    # The exact text stored before noise existed, for one field.
    assert (
        tiny(fields=FIELDS[:1])
        .to_json()
        .endswith(
            '"fields":[{"description":"s","name":"s","required":false,"sensitivity":"anonymous","type":"string"}],'
            '"min_count":5,"name":"Tiny","privacy_policy":"https://example.org/privacy","purpose":"Testing",'
            '"retention_days":30,"vendor":"Example","version":1}'
        )
    )


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ({"type": "string"}, "a string field cannot take noise (only boolean and enum fields can)"),
        ({"type": "integer"}, "a integer field cannot take noise"),
        ({"type": "timestamp"}, "cannot take noise"),
        ({"type": "enum", "values": ["only"]}, "an enum of one value cannot take noise"),
        ({"type": "boolean", "noise": True}, "True is not a number"),
        ({"type": "boolean", "noise": "1.0"}, "'1.0' is not a number"),
        ({"type": "boolean", "noise": 0.05}, "0.05 is out of range; an epsilon is from 0.1 (the most noise) to 10"),
        ({"type": "boolean", "noise": 10.5}, "out of range"),
        ({"type": "boolean", "noise": 0}, "out of range"),
        ({"type": "boolean", "noise": -1}, "out of range"),
        ({"type": "boolean", "noise": float("nan")}, "nan is out of range"),
        ({"type": "boolean", "noise": float("inf")}, "inf is out of range"),
        ({"type": "boolean", "noise": 10**5000}, "out of range"),
    ],
)
def test_a_bad_noise_offer_is_refused_naming_the_key(field: dict[str, Any], words: str) -> None:
    spec = {"name": "g", "description": "g", "noise": 1.0, **field}
    with pytest.raises(ManifestError, match="noise") as refused:
        tiny(fields=[spec])
    assert refused.value.key == "fields[0] (g).noise"
    assert words in refused.value.problem


def test_noise_in_toml_and_its_bounds_are_inclusive() -> None:
    base = tiny().to_obj()
    for epsilon in (MIN_EPSILON, MAX_EPSILON):
        tiny(fields=[{"name": "g", "type": "boolean", "description": "g", "noise": epsilon}])
    toml = "\n".join(
        [f"{k} = {json.dumps(v)}" for k, v in base.items() if k != "fields"]
        + ["[[fields]]", 'name = "g"', 'type = "boolean"', 'description = "g"', "noise = 0.5"]
    )
    assert parse_manifest(toml, "toml").field("g").noise == 0.5  # type: ignore[union-attr]


def test_a_changed_offer_is_not_a_changed_field_nor_a_new_consent() -> None:
    old = _m()
    lowered = _m(version=2, fields=[{**f, "noise": 0.5} if f["name"] == "b" else f for f in NOISY_FIELDS])
    withdrawn = _m(version=3, fields=[{k: v for k, v in f.items() if k != "noise"} for f in NOISY_FIELDS])
    for new in (lowered, withdrawn):
        change = diff_manifests(old, new)
        assert change.changed == () and change.reconsent == ()
    # What the saved scope does with it: a lowered offer lowers the epsilon, a withdrawn one
    # leaves the field out rather than send its true values.
    saved = Scope(("b", "e", "s"), noise={"b": 1.0, "e": 2.0})
    assert carry_scope(saved, old, lowered).noise == {"b": 0.5, "e": 2.0}
    carried = carry_scope(saved, old, withdrawn)
    assert carried.fields == ("s",) and carried.noise == {}
    # A higher offer keeps the epsilon the person chose.
    raised = _m(version=4, fields=[{**f, "noise": 3.0} if f["name"] == "b" else f for f in NOISY_FIELDS])
    assert carry_scope(saved, old, raised).noise == {"b": 1.0, "e": 2.0}


# -- the scope's choice -----------------------------------------------------------------


def test_a_scope_without_noise_keeps_its_spelling() -> None:
    scope = Scope(("s", "t"), {"t": "day"})
    assert scope.to_obj() == {"fields": ["s", "t"], "coarsen": {"t": "day"}, "mode": "records"}
    assert canonical_bytes(scope.to_obj()) == b'{"coarsen":{"t":"day"},"fields":["s","t"],"mode":"records"}'
    assert Scope.from_obj(scope.to_obj()) == scope


def test_a_scope_with_noise_says_so_and_reads_back() -> None:
    scope = Scope(("b", "e", "s"), noise={"e": 1, "b": 0.5})
    assert scope.noise == {"b": 0.5, "e": 1.0}
    assert list(scope.noise) == ["b", "e"]
    obj = scope.to_obj()
    assert obj["noise"] == {"b": 0.5, "e": 1.0}
    assert canonical_bytes(obj) == (b'{"coarsen":{},"fields":["b","e","s"],"mode":"records","noise":{"b":0.5,"e":1.0}}')
    assert Scope.from_obj(json.loads(canonical_bytes(obj))) == scope


@pytest.mark.parametrize("noise", [[], {"b": "1"}, {"b": True}, {"b": None}, {1: 1.0}, "b=1"], ids=lambda v: repr(v))
def test_a_stored_scope_with_bad_noise_is_refused(noise: object) -> None:
    with pytest.raises(ScopeError, match="noise"):
        Scope.from_obj({"fields": ["b"], "coarsen": {}, "mode": "records", "noise": noise})


def test_noise_on_a_field_not_sent_or_with_a_bad_epsilon_is_refused() -> None:
    with pytest.raises(ScopeError, match="'b' is excluded, so it cannot carry noise"):
        Scope(("s",), noise={"b": 1.0})
    for epsilon in (0.0, 0.01, 11.0, math.nan, math.inf):
        with pytest.raises(ScopeError, match=r"the noise of 'b'.*out of range"):
            Scope(("b",), noise={"b": epsilon})


def test_edited_adds_and_removes_noise() -> None:
    m = _m()
    start = Scope(("b", "e", "s"))
    noisy = start.edited(m, noise={"b": 1.0, "e": 0.5})
    assert noisy.noise == {"b": 1.0, "e": 0.5}
    assert noisy.fields == start.fields and noisy.coarsen == start.coarsen and noisy.mode == start.mode
    assert noisy.edited(m, noise={"b": None}).noise == {"e": 0.5}
    # Other edits keep the noise; excluding a field drops its noise with it.
    assert noisy.edited(m, mode="aggregate").noise == {"b": 1.0, "e": 0.5}
    assert noisy.edited(m, exclude=["b"]).noise == {"e": 0.5}
    assert noisy.excluding(["e"]).noise == {"b": 1.0}
    # A field included and noised in one edit; removing noise that is not there is no change.
    assert Scope(("s",)).edited(m, include=["b"], noise={"b": 1.0}).noise == {"b": 1.0}
    assert start.edited(m, noise={"b": None}) == start
    assert start.edited(m, exclude=["b"], noise={"b": None}).noise == {}


def test_edited_refuses_noise_it_cannot_give_and_says_what_there_is() -> None:
    m = _m()
    start = Scope(("b", "e", "s"))
    cases: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        ({}, {"bb": 1.0}, r"'bb' is not a field of Tiny; its fields are s, i, x, b"),
        ({}, {"s": 1.0}, r"Tiny offers no noise for 's'; fields that offer it: b \(up to 1\), e \(up to 2\)"),
        ({}, {"s": None}, r"offers no noise for 's'"),
        ({"exclude": ["b"]}, {"b": 1.0}, r"'b' is excluded, so it cannot carry noise; include it too"),
        ({}, {"b": 1.5}, r"offers noise for 'b' at an epsilon of at most 1 \(a smaller epsilon is more noise\)"),
        ({}, {"b": 0.05}, r"the noise of 'b': 0.05 is out of range"),
        ({}, {"e": math.nan}, r"the noise of 'e': nan is out of range"),
        ({}, {"e": "1"}, r"the noise of 'e': '1' is not a number"),
    ]
    for other, noise, words in cases:
        with pytest.raises(ScopeError, match=words):
            start.edited(m, **other, noise=noise)
    with pytest.raises(ScopeError, match="none of Tiny's fields do"):
        Scope(("b",)).edited(tiny(fields=FIELDS), noise={"b": 1.0})


def test_check_scope_refuses_noise_the_manifest_does_not_offer() -> None:
    check_scope(Scope(("b",), noise={"b": 1.0}), _m())
    with pytest.raises(ScopeError, match="offers no noise for 'b'"):
        check_scope(Scope(("b",), noise={"b": 1.0}), tiny(fields=FIELDS))
    with pytest.raises(ScopeError, match="at most 1"):
        check_scope(Scope(("b",), noise={"b": 2.0}), _m())


def test_fit_scope_keeps_noise_within_the_offer() -> None:
    m = _m()
    assert fit_scope(Scope(("b", "e"), noise={"e": 0.5}), m, date(2026, 1, 1)).noise == {"e": 0.5}
    assert fit_scope(Scope(("b", "e"), noise={"e": 2.0}), m, date(2026, 1, 1)) == Scope(("b", "e"), noise={"e": 2.0})


def test_the_words_say_which_fields_carry_noise_and_what_it_means() -> None:
    m = _m()
    lines = scope_fields_in_words(Scope(("b", "e", "s"), noise={"b": 1.0}), m)
    (b_line,) = [line for line in lines if line.startswith("[send] b ")]
    assert "with noise at ε=1" in b_line
    after = lines[lines.index(b_line) + 1]
    assert after == f"  noise: {noise_in_words(1.0, 2)}"
    (e_line,) = [line for line in lines if line.startswith("[send] e ")]
    assert "noise offered up to ε=2" in e_line
    assert not any("noise" in line for line in scope_fields_in_words(Scope(("s",)), tiny(fields=FIELDS)))


# -- the draw ------------------------------------------------------------------------------


def test_keep_probability_and_its_words() -> None:
    assert keep_probability(1.0, 2) == pytest.approx(math.e / (math.e + 1))
    assert keep_probability(2.0, 4) == pytest.approx(math.exp(2) / (math.exp(2) + 3))
    assert other_probability(2.0, 4) == pytest.approx((1 - keep_probability(2.0, 4)) / 3)
    words = noise_in_words(1.0, 2)
    assert words == (
        "about 27% of these answers are replaced at random before sending: "
        "the vendor can still count the total, but no single answer can be trusted"
    )
    assert noise_in_words(0.5, 4).startswith("about 65% ")  # 3/(e^0.5+3) = 0.6453
    assert noise_in_words(MAX_EPSILON, 2).startswith("fewer than 1% ")


@pytest.mark.parametrize(
    ("epsilon", "domain"),
    [
        (0.5, (False, True)),
        (1.0, (False, True)),
        (MAX_EPSILON, (False, True)),
        (MIN_EPSILON, ("a", "b", "c")),
        (2.0, ("a", "b", "c", "d")),
        (1.0, tuple("abcdefghij")),
    ],
)
def test_each_answer_is_kept_with_probability_p_and_otherwise_replaced_evenly(
    epsilon: float, domain: tuple[Any, ...]
) -> None:
    n, k = 40_000, len(domain)
    p, q = keep_probability(epsilon, k), other_probability(epsilon, k)
    draw = NoiseDraw(SEED, "f", epsilon, domain)
    for true in (domain[0], domain[-1]):
        sent = Counter(draw.column([true] * n, MISSING))
        assert set(sent) <= set(domain)
        # Within four binomial standard deviations, for the kept share and each other value.
        assert abs(sent[true] / n - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1 / n
        for other in domain:
            if other != true:
                assert abs(sent[other] / n - q) <= 4 * math.sqrt(q * (1 - q) / n) + 1 / n


@settings(max_examples=200, deadline=None)
@given(
    column=st.lists(st.sampled_from([True, False, MISSING, "a", "b", "c", 0, 1, 1.0, "zz"]), max_size=60),
    epsilon=st.sampled_from([MIN_EPSILON, 0.5, 1.0, 2.0, MAX_EPSILON]),
    domain=st.sampled_from([(False, True), ("a", "b", "c"), ("b", "c")]),
)
def test_a_draw_never_sends_an_undeclared_value_and_is_the_same_each_way(
    column: list[Any], epsilon: float, domain: tuple[Any, ...]
) -> None:
    draw = NoiseDraw(SEED, "f", epsilon, domain)
    whole = draw.column(column, MISSING)
    assert len(whole) == len(column)
    for index, (cell, sent) in enumerate(zip(column, whole, strict=True)):
        if cell is MISSING:
            assert sent is MISSING  # a report without the field stays without it
            continue
        assert any(sent == v and type(sent) is type(v) for v in domain), (cell, sent)
        assert sent == draw.value(index, cell) and type(sent) is type(draw.value(index, cell))
    # The same seed, field and epsilon: the same draw, however long the column grows.
    assert NoiseDraw(SEED, "f", epsilon, domain).column([*column, *column], MISSING)[: len(column)] == whole


def test_the_draw_is_keyed_by_seed_field_and_epsilon() -> None:
    column = [True] * 100 + [False] * 100
    first = NoiseDraw(SEED, "f", 1.0, (False, True)).column(column, MISSING)
    assert NoiseDraw(SEED, "f", 1.0, (False, True)).column(column, MISSING) == first
    for other in (
        NoiseDraw(OTHER_SEED, "f", 1.0, (False, True)),
        NoiseDraw(SEED, "g", 1.0, (False, True)),
        NoiseDraw(SEED, "f", 0.5, (False, True)),
    ):
        assert other.column(column, MISSING) != first
    with pytest.raises(ValueError, match="32 bytes"):
        NoiseDraw(SEED[:16], "f", 1.0, (False, True))


# -- the bytes -----------------------------------------------------------------------------


def _seeded(m: Manifest, reports: list[Report], seed: bytes = SEED) -> ReportColumns:
    return ReportColumns.decode(m, [json.dumps(r) for r in reports], noise_seed=seed)


@settings(max_examples=300, deadline=None)
@given(reports=st.lists(_report, max_size=30), scope=_noisy_scope(), min_count=st.integers(2, 5))
def test_noise_touches_only_its_own_fields_and_only_with_declared_values(
    reports: list[Report], scope: Scope, min_count: int
) -> None:
    m = _m(min_count=min_count)
    check_scope(scope, m)
    payload = reference_render(FRAME, m, scope, reports, noise_seed=SEED)
    # The digest is of exactly these bytes, and they are canonical.
    assert payload.sha256 == hashlib.sha256(payload.body).hexdigest()
    assert canonical_bytes(payload.obj()) == payload.body
    obj = payload.obj()
    # The payload's scope says which fields carry noise, with which epsilon.
    assert obj["scope"].get("noise", {}) == scope.noise
    plain = reference_render(FRAME, m, Scope(scope.fields, scope.coarsen, scope.mode), reports).obj()
    if scope.mode == "records":
        for sent, without, report in zip(obj["reports"], plain["reports"], reports, strict=True):
            assert set(sent) == set(without) <= set(scope.fields)  # excluded fields never appear
            for name in sent:
                if name in scope.noise:
                    assert sent[name] in DOMAIN[name] and type(sent[name]) is type(report[name])
                else:
                    assert sent[name] == without[name]  # other fields untouched
    else:
        for name, counts in obj["aggregates"].items():
            if name in scope.noise:
                # Counts of the noisy values: as many as reports with the field, none undeclared.
                assert sum(counts.values()) == sum(plain["aggregates"][name].values())
                assert set(counts) <= {value_key(v) for v in DOMAIN[name]} | {OTHER}
            else:
                assert counts == plain["aggregates"][name]


@settings(max_examples=200, deadline=None)
@given(reports=st.lists(_report, max_size=30), scope=_noisy_scope(), placed=st.booleans())
def test_the_columns_give_the_reference_bytes_with_noise_in_both_wire_formats(
    reports: list[Report], scope: Scope, placed: bool
) -> None:
    otlp = {"format": "otlp", "otlp": {"service_names": ["tiny-svc"]}, "endpoint": "https://collector.example.org"}
    for m in (_m(min_count=2), _m(min_count=2, **otlp)):
        check_scope(scope, m)
        columns = _seeded(m, reports)
        fast = vendor_body(columns, FRAME, m, scope)
        assert fast == reference_vendor_body(FRAME, m, scope, reports, noise_seed=SEED)
        assert fast == vendor_body(columns, FRAME, m, scope)  # from the pieces it kept


@settings(max_examples=150, deadline=None)
@given(reports=st.lists(_report, max_size=30), scope=_noisy_scope())
def test_value_counts_count_exactly_the_values_sent(reports: list[Report], scope: Scope) -> None:
    m = _m()
    check_scope(scope, m)
    as_records = Scope(scope.fields, scope.coarsen, "records", scope.noise)
    records = reference_render(FRAME, m, as_records, reports, noise_seed=SEED)
    sent = records.obj()["reports"]
    columns = _seeded(m, reports)
    for name in scope.fields:
        expected = Counter(value_key(r[name]) for r in sent if name in r)
        assert columns.value_counts(name, scope) == expected


def test_the_same_batch_and_scope_give_the_same_bytes_and_toggling_gives_them_back() -> None:
    m = _m()
    reports: list[Report] = [{"b": i % 3 == 0, "e": "abc"[i % 3], "s": str(i)} for i in range(300)]
    noisy = Scope(("b", "e", "s"), noise={"b": 1.0, "e": 2.0})
    plain = Scope(("b", "e", "s"))
    columns = _seeded(m, reports)
    first = columns.render(FRAME, m, noisy)
    assert columns.render(FRAME, m, plain) == reference_render(FRAME, m, plain, reports)
    assert columns.render(FRAME, m, noisy) == first  # noise off, then on: the same draw
    assert _seeded(m, reports).render(FRAME, m, noisy) == first  # decoded afresh
    assert first != columns.render(FRAME, m, plain)
    # Another batch (another seed) draws other noise.
    assert _seeded(m, reports, OTHER_SEED).render(FRAME, m, noisy).body != first.body
    # Noise on one field does not move the draw of another.
    only_b = columns.render(FRAME, m, Scope(("b", "e", "s"), noise={"b": 1.0})).obj()["reports"]
    assert [r["b"] for r in only_b] == [r["b"] for r in first.obj()["reports"]]


def test_noise_without_a_seed_is_refused_by_both_paths() -> None:
    m = _m()
    scope = Scope(("b",), noise={"b": 1.0})
    with pytest.raises(ScopeError, match="no secret"):
        reference_render(FRAME, m, scope, [{"b": True}])
    columns = ReportColumns.decode(m, ['{"b":true}'])
    for render in (
        lambda: columns.render(FRAME, m, scope),
        lambda: columns.value_counts("b", scope),
        lambda: columns.scoped_records(scope),
        lambda: columns.aggregates(scope, 2),
    ):
        with pytest.raises(ScopeError, match="no secret"):
            render()
    assert "seed" not in repr(columns) and SEED.hex() not in repr(_seeded(m, []))


# -- the vendor's estimator ---------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 2.0])
@pytest.mark.parametrize(
    ("domain", "true"),
    [
        ((False, True), {True: 3_000, False: 7_000}),
        (("w", "x", "y", "z"), {"w": 5_000, "x": 2_500, "y": 1_500, "z": 1_000}),
    ],
)
def test_the_vendors_estimator_recovers_the_true_counts(
    epsilon: float, domain: tuple[Any, ...], true: dict[Any, int]
) -> None:
    field = {"name": "f", "type": "boolean", "description": "f", "noise": 2.0}
    if domain[0] != False:  # noqa: E712 - the enum case
        field = {**field, "type": "enum", "values": list(domain)}
    m = tiny(fields=[field])
    reports: list[Report] = [{"f": value} for value, count in true.items() for _ in range(count)]
    total, k = len(reports), len(domain)
    assert total == 10_000
    seed = hashlib.sha256(f"estimator {domain} {epsilon}".encode()).digest()
    noisy = _seeded(m, reports, seed).value_counts("f", Scope(("f",), noise={"f": epsilon}))
    assert noisy != Counter(value_key(r["f"]) for r in reports)  # there is noise to undo
    estimates = estimate_counts(noisy, epsilon, [value_key(v) for v in domain])
    assert sum(e.count for e in estimates.values()) == pytest.approx(total)
    for value, count in true.items():
        estimate = estimates[value_key(value)]
        expected_error = standard_error(count, total, epsilon, k)
        assert abs(estimate.count - count) <= 4 * expected_error, (value, estimate, expected_error)
        # The error the vendor can work out from the noisy counts is close to the true one.
        assert estimate.error == pytest.approx(expected_error, rel=0.15)


def test_the_estimator_reads_folded_aggregates() -> None:
    epsilon, values = 1.0, ["w", "x", "y", "z"]
    p, q = keep_probability(epsilon, 4), other_probability(epsilon, 4)
    estimates = estimate_counts({"w": 600, OTHER: 400}, epsilon, values)
    assert set(estimates) == {"w", OTHER}
    assert estimates["w"].count == pytest.approx((600 - 1000 * q) / (p - q))
    assert estimates[OTHER].count == pytest.approx((400 - 1000 * 3 * q) / (p - q))
    # A value never seen, with nothing folded, is a count of 0 observed.
    assert estimate_counts({"w": 10}, epsilon, values)["x"].count == pytest.approx(-10 * q / (p - q))


def test_the_worked_example_of_docs_noise_md() -> None:
    # docs/noise.md: 1,000 booleans at ε = 1, 600 arrive as true.
    estimates = estimate_counts({"true": 600, "false": 400}, 1.0, ["false", "true"])
    assert round(keep_probability(1.0, 2), 4) == 0.7311 and round(other_probability(1.0, 2), 4) == 0.2689
    assert round(estimates["true"].count, 1) == 716.4
    assert round(estimates["false"].count, 1) == 283.6
    assert round(estimates["true"].error, 1) == 30.3
    enum = estimate_counts({"w": 400, "x": 300, "y": 200, "z": 100}, 2.0, ["w", "x", "y", "z"])
    assert round(keep_probability(2.0, 4), 4) == 0.7112 and round(other_probability(2.0, 4), 4) == 0.0963
    assert [round(enum[v].count, 1) for v in "wxyz"] == [493.9, 331.3, 168.7, 6.1]
    assert [round(enum[v].error, 1) for v in "wxyz"] == [19.6, 18.3, 16.8, 15.2]


# -- the broker --------------------------------------------------------------------------


def _noisy_app(broker: Broker, app_id: str = "org.example.tiny") -> Manifest:
    m = _m(app_id=app_id)
    allowed(broker, m)
    return m


def _reports(n: int = 60) -> list[dict[str, object]]:
    return [{"b": i % 2 == 0, "e": "abc"[i % 3], "s": f"r{i}"} for i in range(n)]


def test_what_the_preview_showed_with_noise_is_what_approval_stores(broker: Broker) -> None:
    m = _noisy_app(broker)
    batch = broker.ingest(m.app_id, _reports()).batch_id
    assert batch is not None
    broker.close_batches(force=True)
    seed = broker.store.noise_seed(batch)
    assert seed is not None and len(seed) == 32
    scope = broker.edited_scope(batch, noise={"b": 1.0, "e": 0.5})
    assert scope.noise == {"b": 1.0, "e": 0.5}
    shown = broker.view(batch, scope).payload
    assert shown is not None
    assert json.loads(shown.body)["scope"]["noise"] == {"b": 1.0, "e": 0.5}
    # Back and forth: the same draw again.
    plain = broker.view(batch).payload
    assert plain is not None and plain != shown
    assert broker.view(batch, scope).payload == shown
    broker.forget_preview()
    assert broker.view(batch, scope).payload == shown
    # The reference, from the stored reports and the batch's seed, agrees byte for byte.
    stored = [json.loads(body) for body in broker.store.report_bodies(batch)]
    frame = broker.view(batch).batch
    assert (
        reference_render(
            FRAME.__class__(frame.app_id, frame.batch_id, 1, frame.window_start, frame.window_end),
            m,
            scope,
            stored,
            noise_seed=seed,
        )
        == shown
    )
    approved = broker.approve(batch, scope, expected_sha256=shown.sha256)
    assert approved.payload == shown
    assert broker.store.payload(batch) == shown.body
    assert broker.store.batch(batch).payload_sha256 == shown.sha256  # type: ignore[union-attr]
    # Once the bytes are stored, the seed goes with the reports.
    assert broker.store.noise_seed(batch) is None
    (receipt,) = broker.history()
    assert receipt.detail["scope"]["noise"] == {"b": 1.0, "e": 0.5}
    assert receipt.detail["payload_sha256"] == shown.sha256


def test_a_remembered_scope_carries_its_noise_to_the_next_batch(broker: Broker, clock: Clock) -> None:
    m = _noisy_app(broker)
    first = broker.ingest(m.app_id, _reports()).batch_id
    assert first is not None
    broker.close_batches(force=True)
    broker.approve(first, broker.edited_scope(first, noise={"b": 0.5}), remember=True)
    assert broker.app(m.app_id).scope.noise == {"b": 0.5}
    clock.advance(days=1)
    second = broker.ingest(m.app_id, _reports()).batch_id
    assert second is not None and second != first
    broker.close_batches(force=True)
    view = broker.view(second)
    assert view.batch.status == "approved" and view.payload is not None
    assert view.payload.obj()["scope"]["noise"] == {"b": 0.5}


def test_two_batches_draw_their_own_noise(broker: Broker, clock: Clock) -> None:
    m = _noisy_app(broker)
    batches = []
    for _ in range(2):
        batch = broker.ingest(m.app_id, _reports(200)).batch_id
        assert batch is not None
        batches.append(batch)
        clock.advance(days=1)
    broker.close_batches(force=True)
    seeds = [broker.store.noise_seed(b) for b in batches]
    assert seeds[0] != seeds[1]
    scope = Scope(("b", "e", "s"), noise={"b": 1.0, "e": 2.0})
    sent = [broker.view(b, scope).payload.obj()["reports"] for b in batches]  # type: ignore[union-attr]
    assert [r["b"] for r in sent[0]] != [r["b"] for r in sent[1]]
    # A batch decided otherwise loses its seed too: nothing is left to draw from.
    broker.discard(batches[0])
    assert broker.store.noise_seed(batches[0]) is None
    assert broker.store.noise_seed(batches[1]) == seeds[1]


def test_the_seed_is_in_no_view_of_the_batch(broker: Broker) -> None:
    m = _noisy_app(broker)
    batch = broker.ingest(m.app_id, _reports()).batch_id
    assert batch is not None
    seed = broker.store.noise_seed(batch)
    assert seed is not None
    view = broker.view(batch, Scope(("b",), noise={"b": 1.0}))
    shown = json.dumps(view.to_obj()) + repr(view) + repr(broker.store.batch(batch))
    assert seed.hex() not in shown and repr(seed) not in shown
