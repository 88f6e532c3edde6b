"""Forwarding ``format = "otlp"`` batches to a strict OpenTelemetry collector on 127.0.0.1:
exactly the approved bytes, at the signal's URL, parsed as OTLP by protobuf's own parser; a
collector's partial success recorded with its counts and never retried; the retry rules as
for every vendor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.builders import Clock, allowed, tiny
from tests.support.otlp_collector import collector
from tray_app.core import Broker
from tray_app.core.forwarder import Forwarder
from tray_app.core.rules.retry import Outcome

from .test_forwarder import NoKeyring

APP = "org.example.tiny"
FIELDS = [
    {"name": "event", "type": "enum", "values": ["export", "crop"], "description": "what", "source": "event_name"},
    {"name": "n", "type": "integer", "description": "a number"},
    {"name": "who", "type": "string", "description": "the user", "sensitivity": "identifying"},
]


@pytest.fixture
def forwarder(broker: Broker) -> Iterator[Forwarder]:
    forwarder = Forwarder(broker.deliveries, secret_store=NoKeyring())
    yield forwarder
    forwarder.close()


def _approved(broker: Broker, base: str, *, aggregate: bool = False, reports: int = 6) -> str:
    allowed(broker, tiny(endpoint=base, fields=FIELDS, format="otlp", otlp={"service_names": ["tiny"]}, min_count=2))
    broker.ingest(APP, [{"event": ("export", "crop")[i % 2], "n": i, "who": "ann"} for i in range(reports)])
    (closed,) = broker.close_batches(force=True)
    scope = broker.edited_scope(closed.batch_id, mode="aggregate" if aggregate else None)
    return broker.approve(closed.batch_id, scope=scope).batch.batch_id


def _one(received: list[Any]) -> Any:
    assert len(received) == 1, [r.path for r in received]
    return received[0]


def test_records_go_to_v1_logs_as_exactly_the_approved_bytes_and_parse_as_otlp(
    broker: Broker, forwarder: Forwarder
) -> None:
    with collector([200]) as c:
        batch = _approved(broker, c.url)
        approved = broker.store.payload(batch)
        shown = broker.view(batch)
        assert shown.destination == c.url + "/v1/logs"
        [outcome] = forwarder.deliver_due()
        assert outcome.outcome == Outcome.DELIVERED and outcome.error is None
        export = _one(c.received)
    assert c.refused == []
    assert export.path == "/v1/logs" and export.body == approved
    assert export.headers["content-type"] == "application/json"
    [resource_logs] = export.request.resource_logs
    attributes = {a.key: a.value.string_value for a in resource_logs.resource.attributes}
    assert attributes["telemetry_tray.batch_id"] == batch and attributes["service.name"] == "tiny"
    records = resource_logs.scope_logs[0].log_records
    assert [r.event_name for r in records] == ["export", "crop"] * 3
    assert [a.value.int_value for r in records for a in r.attributes if a.key == "n"] == list(range(6))
    assert b"ann" not in export.body  # the identifying field starts excluded
    receipt = broker.history()[-1]
    assert receipt.action == "delivered" and receipt.detail["endpoint"] == c.url + "/v1/logs"
    assert "partial" not in receipt.detail
    assert broker.history()[-2].detail["endpoint"] == c.url + "/v1/logs"  # the approval says where, too


def test_aggregates_go_to_v1_metrics_as_delta_sums_that_add_up(broker: Broker, forwarder: Forwarder) -> None:
    with collector([200]) as c:
        batch = _approved(broker, c.url, aggregate=True)
        approved = broker.store.payload(batch)
        [outcome] = forwarder.deliver_due()
        export = _one(c.received)
    assert outcome.outcome == Outcome.DELIVERED and c.refused == []
    assert export.path == "/v1/metrics" and export.body == approved
    metrics = {m.name: m for m in export.request.resource_metrics[0].scope_metrics[0].metrics}
    by_event = metrics["telemetry_tray.reports.by_event"].sum
    assert by_event.aggregation_temporality == 1 and by_event.is_monotonic
    counts = {p.attributes[0].value.string_value: p.as_int for p in by_event.data_points}
    assert counts == {"export": 3, "crop": 3}
    assert sum(p.as_int for p in metrics["telemetry_tray.reports.by_n"].sum.data_points) == 6  # (other) too


@pytest.mark.parametrize("answer", ["partial", "partial-proto"])
def test_a_partial_success_is_recorded_with_its_count_and_not_retried(
    broker: Broker, forwarder: Forwarder, answer: str
) -> None:
    with collector([(answer, 2, "2 log records too old to take")]) as c:
        batch = _approved(broker, c.url)
        [outcome] = forwarder.deliver_due()
        assert forwarder.deliver_all(0.5) == ([], [])  # nothing left to send: no resend
        _one(c.received)
    assert outcome.outcome == Outcome.DELIVERED_PARTLY
    assert outcome.error == "the collector refused 2 log records: 2 log records too old to take"
    assert broker.view(batch).batch.status == "delivered"
    receipt = broker.history()[-1]
    assert receipt.action == "delivered"
    assert receipt.detail["partial"] == outcome.error
    assert broker.verify_history().ok


def test_a_collector_that_is_busy_is_retried_with_the_same_bytes(
    broker: Broker, forwarder: Forwarder, clock: Clock
) -> None:
    with collector([(503, {"Retry-After": "30"}), 200]) as c:
        batch = _approved(broker, c.url)
        [first] = forwarder.deliver_due()
        assert first.outcome == Outcome.RETRYING and first.next_attempt_at is not None
        assert forwarder.deliver_due() == []  # not before Retry-After
        clock.advance(seconds=31)
        [second] = forwarder.deliver_due()
        bodies = [r.body for r in c.received]
    assert second.outcome == Outcome.DELIVERED
    assert bodies == [broker.store.payload(batch)] * 2


def test_a_collector_that_refuses_the_body_fails_for_good_and_says_why(broker: Broker, forwarder: Forwarder) -> None:
    with collector([200], base="/otlp") as c:
        batch = _approved(broker, c.url.replace("/otlp", "/elsewhere"))
        [outcome] = forwarder.deliver_due()
    assert outcome.outcome == Outcome.FAILED and outcome.status == 404
    assert broker.view(batch).batch.status == "failed"


def test_an_unreadable_partial_success_is_still_a_delivery_sent_once(broker: Broker, forwarder: Forwarder) -> None:
    # "²" passes str.isdigit() but not int(): the answer must not undo the delivery, or the
    # batch would be sent again when its lease ran out.
    with collector([("partial", "²", "odd")]) as c:
        batch = _approved(broker, c.url)
        [outcome] = forwarder.deliver_due()
        assert forwarder.deliver_all(0.3) == ([], [])
        _one(c.received)
    assert outcome.outcome in (Outcome.DELIVERED, Outcome.DELIVERED_PARTLY)
    assert broker.view(batch).batch.status == "delivered"
