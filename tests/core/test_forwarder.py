"""Forwarding to a real vendor server on 127.0.0.1, under every fault of issue 4."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import trustme

from tests.support.builders import Clock, allowed, tiny
from tests.support.fake_vendor import vendor
from tests.support.keyring_session import real_keyring
from tray_app import __version__
from tray_app.core import Broker, Locations
from tray_app.core.deliveries import LEASE_S
from tray_app.core.forwarder import Forwarder, SendTimeout
from tray_app.core.platform.secrets import SecretStore

APP = "org.example.tiny"


class NoKeyring(SecretStore):
    """For vendors without auth, the keyring is never asked."""

    def get(self, app_id: str) -> str | None:
        raise AssertionError("the keyring must not be asked for a vendor without auth")


def _approved(broker: Broker, url: str, n: int = 1, **manifest: object) -> list[str]:
    allowed(broker, tiny(endpoint=url, **manifest))
    ids = []
    for i in range(n):
        broker.ingest(APP, [{"event": f"e{i}", "n": i}])
        (closed,) = broker.close_batches(force=True)
        ids.append(broker.approve(closed.batch_id).batch.batch_id)
    return ids


_OPEN: list[Forwarder] = []


def _forwarder(broker: Broker, **kw: object) -> Forwarder:
    """A forwarder closed when the test ends (its pooled connections with it)."""
    kw.setdefault("secret_store", NoKeyring())
    forwarder = Forwarder(broker.deliveries, **kw)  # type: ignore[arg-type]
    _OPEN.append(forwarder)
    return forwarder


@pytest.fixture(autouse=True)
def _close_forwarders() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


@pytest.fixture
def fast_timeout() -> SendTimeout:
    return SendTimeout(connect=2.0, read=1.0, write=2.0, pool=2.0)


def _actions(broker: Broker, batch_id: str | None = None) -> list[str]:
    return [r.action for r in broker.history() if batch_id is None or r.batch_id == batch_id]


def test_the_approved_bytes_arrive_once_with_the_right_headers(broker: Broker) -> None:
    with vendor([200]) as v:
        (batch,) = _approved(broker, v.url)
        approved = broker.store.payload(batch)
        outcomes = _forwarder(broker).deliver_due()
        assert [o.outcome for o in outcomes] == ["delivered"]
        assert v.bodies() == [approved]
        headers = v.received[0].headers
        assert headers["content-type"] == "application/json"
        assert headers["idempotency-key"] == batch
        assert headers["user-agent"] == f"telemetry-tray/{__version__}"
        assert "authorization" not in headers
        assert _forwarder(broker).deliver_due() == []  # nothing twice
    view = broker.view(batch)
    assert view.batch.status == "delivered"
    assert view.payload is not None and view.payload.body == approved
    receipt = broker.history()[-1]
    assert receipt.action == "delivered"
    assert receipt.detail["status"] == 200 and receipt.detail["request_id"] == "req-1"
    assert receipt.detail["payload_bytes"] == len(approved)  # type: ignore[arg-type]
    assert receipt.detail["payload_sha256"] == view.payload.sha256
    assert broker.verify_history().ok


def test_503_then_200(broker: Broker, clock: Clock) -> None:
    with vendor([503, 200]) as v:
        (batch,) = _approved(broker, v.url)
        forwarder = _forwarder(broker)
        (first,) = forwarder.deliver_due()
        assert first.outcome == "retrying" and first.status == 503
        assert forwarder.deliver_due() == []  # not due yet: backoff
        clock.advance(seconds=11)
        (second,) = forwarder.deliver_due()
        assert second.outcome == "delivered"
        assert len(v.received) == 2
        assert v.received[0].body == v.received[1].body
        assert {r.headers["idempotency-key"] for r in v.received} == {batch}
    assert _actions(broker) == ["approved", "retrying", "delivered"]


@pytest.mark.parametrize("header", ["120", "HTTP-DATE"])
def test_429_honours_retry_after(broker: Broker, clock: Clock, header: str) -> None:
    if header == "HTTP-DATE":
        header = format_datetime(clock.now + timedelta(seconds=120), usegmt=True)
    with vendor([(429, {"Retry-After": header}), 200]) as v:
        _approved(broker, v.url)
        forwarder = _forwarder(broker)
        (first,) = forwarder.deliver_due()
        assert first.outcome == "retrying" and first.next_attempt_at is not None
        clock.advance(seconds=100)
        assert forwarder.deliver_due() == []  # still inside Retry-After
        clock.advance(seconds=30)
        assert [o.outcome for o in forwarder.deliver_due()] == ["delivered"]
        assert len(v.received) == 2


def test_retry_after_is_capped_at_an_hour(broker: Broker, clock: Clock) -> None:
    with vendor([(503, {"Retry-After": "999999"}), 200]) as v:
        _approved(broker, v.url)
        forwarder = _forwarder(broker)
        forwarder.deliver_due()
        clock.advance(seconds=3601)
        assert [o.outcome for o in forwarder.deliver_due()] == ["delivered"]


def test_a_reset_connection_is_retried(broker: Broker, clock: Clock) -> None:
    with vendor(["reset", 200]) as v:
        _approved(broker, v.url)
        forwarder = _forwarder(broker)
        (first,) = forwarder.deliver_due()
        assert first.outcome == "retrying" and first.status is None and first.error
        clock.advance(seconds=11)
        assert [o.outcome for o in forwarder.deliver_due()] == ["delivered"]


def test_a_vendor_that_hangs_past_the_timeout_is_retried(
    broker: Broker, clock: Clock, fast_timeout: SendTimeout
) -> None:
    with vendor([("hang", 3), 200]) as v:
        (batch,) = _approved(broker, v.url)
        forwarder = _forwarder(broker, timeout=fast_timeout)
        (first,) = forwarder.deliver_due()
        assert first.outcome == "retrying" and "Timeout" in (first.error or "")
        clock.advance(seconds=11)
        assert [o.outcome for o in forwarder.deliver_due()] == ["delivered"]
    # The vendor may have received the first (timed-out) copy too: the same key lets it keep one.
    assert {r.headers["idempotency-key"] for r in v.received} == {batch}


def test_an_unretryable_status_fails_for_good(broker: Broker, clock: Clock) -> None:
    with vendor([400]) as v:
        (batch,) = _approved(broker, v.url)
        forwarder = _forwarder(broker)
        (outcome,) = forwarder.deliver_due()
        assert outcome.outcome == "failed" and outcome.status == 400
        clock.advance(days=1)
        assert forwarder.deliver_due() == []
        assert len(v.received) == 1
    assert broker.view(batch).batch.status == "failed"
    failed = broker.history()[-1]
    assert failed.action == "failed" and failed.detail["status"] == 400 and "scripted" in failed.detail["error"]


def test_redirects_are_not_followed(broker: Broker) -> None:
    with vendor([(307, {"Location": "http://127.0.0.1:9/elsewhere"})]) as v:
        _approved(broker, v.url)
        (outcome,) = _forwarder(broker).deliver_due()
        assert outcome.outcome == "failed" and outcome.status == 307


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_server(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    return context


def test_an_untrusted_certificate_fails_and_is_never_bypassed(broker: Broker, clock: Clock, ca: trustme.CA) -> None:
    with vendor([200], tls=_tls_server(ca)) as v:
        (batch,) = _approved(broker, v.url)
        (outcome,) = _forwarder(broker).deliver_due()  # the OS trust store does not know our test CA
        assert outcome.outcome == "retrying"
        assert "TLS verification failed" in (outcome.error or "") or "CERTIFICATE" in (outcome.error or "")
        assert v.received == []  # not one byte of the payload went out
        clock.advance(seconds=11)
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        (second,) = _forwarder(broker, verify=trusting).deliver_due()
        assert second.outcome == "delivered"
        assert v.bodies() == [broker.store.payload(batch)]


def test_two_senders_at_once_send_each_batch_once(home: Path, clock: Clock) -> None:
    brokers = [Broker.open(Locations.under(home), clock) for _ in range(2)]
    with vendor([200]) as v:
        ids = _approved(brokers[0], v.url, n=20)
        forwarders = [_forwarder(b) for b in brokers]
        threads = [threading.Thread(target=f.deliver_due) for f in forwarders]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        keys = [r.headers["idempotency-key"] for r in v.received]
        assert sorted(keys) == sorted(ids)  # every batch once, none twice
    assert _actions(brokers[0]).count("delivered") == 20


def test_a_crashed_sender_is_replaced_after_its_lease_with_the_same_key(broker: Broker, clock: Clock) -> None:
    with vendor([200]) as v:
        (batch,) = _approved(broker, v.url)
        (claim,) = broker.deliveries.claim("sender-that-dies")
        assert broker.deliveries.claim("another") == []  # claimed: nobody else takes it
        clock.advance(seconds=LEASE_S + 1)  # the lease ran out: the first sender is presumed dead
        forwarder = _forwarder(broker)
        assert [o.outcome for o in forwarder.deliver_due()] == ["delivered"]
        # The dead sender's late answer changes nothing.
        late = broker.deliveries.finish(claim, status=200)
        assert late.outcome.startswith("already")
        assert [r.headers["idempotency-key"] for r in v.received] == [batch]
    assert _actions(broker).count("delivered") == 1


def test_nothing_is_sent_while_paused_or_after_discard(broker: Broker) -> None:
    with vendor([200]) as v:
        _approved(broker, v.url)
        broker.set_paused_all(True)
        assert _forwarder(broker).deliver_due() == []
        broker.set_paused_all(False)
        broker.ingest(APP, [{"event": "x"}])
        (closed,) = broker.close_batches(force=True)
        broker.discard(closed.batch_id)
        outcomes = _forwarder(broker).deliver_due()
        assert len(outcomes) == 1 and len(v.received) == 1
        assert json.loads(v.received[0].body)["reports"] == [{"event": "e0", "n": 0}]


def test_approving_wakes_the_delivery_loop(broker: Broker) -> None:
    from tray_app.core.forwarder import DeliveryLoop

    with vendor([200]) as v:
        loop = DeliveryLoop(_forwarder(broker))
        loop.start()
        try:
            _approved(broker, v.url)
            deadline = threading.Event()
            for _ in range(50):
                if v.received:
                    break
                deadline.wait(0.1)
            assert len(v.received) == 1
        finally:
            loop.stop()


def test_blocking_during_a_send_stops_its_retries(broker: Broker, clock: Clock) -> None:
    with vendor([("slow", 1.5, 503)]) as v:
        (batch,) = _approved(broker, v.url)
        forwarder = _forwarder(broker)
        sending = threading.Thread(target=forwarder.deliver_due)
        sending.start()
        for _ in range(100):
            if v.received:
                break
            threading.Event().wait(0.02)
        broker.set_consent(APP, False)  # while the bytes are on the wire
        sending.join()
        assert broker.view(batch).batch.status == "discarded"
        clock.advance(hours=2)
        assert forwarder.deliver_due() == []
        assert len(v.received) == 1
    assert _actions(broker, batch) == ["approved", "discarded"]


def test_a_huge_error_answer_is_not_read_whole(broker: Broker) -> None:
    with vendor([("body", 500, b"E" * 50_000_000)]) as v:
        _approved(broker, v.url)
        (outcome,) = _forwarder(broker).deliver_due()
        assert outcome.outcome == "failed" and outcome.status == 500
        assert len(outcome.error or "") < 400
        assert len(v.received) == 1
    assert len(broker.history()[-1].detail["error"]) <= 300


def test_pause_all_means_no_wake_ups(broker: Broker) -> None:
    with vendor([200]) as v:
        _approved(broker, v.url)
        assert broker.deliveries.next_delivery_due() is not None
        broker.set_paused_all(True)
        assert broker.deliveries.next_delivery_due() is None  # the delivery thread sleeps until woken


def test_a_secret_echoed_by_the_vendor_never_reaches_a_receipt(broker: Broker, clock: Clock) -> None:
    store = real_keyring()
    secret = "tt-echo-" + "x7" * 12
    try:
        store.set(APP, secret)
        echo = f"bad credentials: Bearer {secret}".encode()
        with vendor([("body", 401, echo)]) as v:
            _approved(broker, v.url, auth="bearer")
            (outcome,) = _forwarder(broker, secret_store=store).deliver_due()
            assert v.received[0].headers["authorization"] == f"Bearer {secret}"
            assert outcome.outcome == "failed"
            assert secret not in (outcome.error or "") and "[secret]" in (outcome.error or "")
        for path in broker.store.path.parent.iterdir():
            assert secret.encode() not in path.read_bytes(), path
        assert all(secret not in json.dumps(r.to_export()) for r in broker.history())
    finally:
        store.clear(APP)


def test_a_long_echoed_secret_leaves_no_part_behind(broker: Broker) -> None:
    # A receipt keeps 300 characters of the answer: cut before redacting, the start of a
    # 600-character token would have been kept.
    store = real_keyring()
    secret = "eyJ" + "k9Z" * 200
    try:
        store.set(APP, secret)
        echo = f"token  rejected:   {secret} (expired)".encode()
        with vendor([("body", 401, echo)]) as v:
            _approved(broker, v.url, auth="bearer")
            (outcome,) = _forwarder(broker, secret_store=store).deliver_due()
        error = outcome.error or ""
        assert "[secret]" in error and secret[:40] not in error and len(error) <= 300
        for path in broker.store.path.parent.iterdir():
            assert secret[:40].encode() not in path.read_bytes(), path
        assert all(secret[:40] not in json.dumps(r.to_export()) for r in broker.history())
    finally:
        store.clear(APP)


def test_the_delivery_loop_stops_promptly_whenever_asked(broker: Broker) -> None:
    import time

    from tray_app.core.forwarder import DeliveryLoop

    for _ in range(30):  # stop() at every point of the loop's round
        loop = DeliveryLoop(_forwarder(broker))
        loop.start()
        assert loop.running
        time.sleep(0.001 * (_ % 5))
        started = time.monotonic()
        loop.stop(timeout=5)
        assert not loop.running
        assert time.monotonic() - started < 2


def test_a_client_that_cannot_be_made_is_a_failed_attempt_on_record(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The HTTP stack is made at the first send; if that fails (here: the OS trust store
    # cannot be read), the attempt is recorded and retried, not lost in a loop.
    import ssl

    def no_trust_store() -> ssl.SSLContext:
        raise ssl.SSLError("no trust store")

    monkeypatch.setattr("tray_app.core.forwarder.system_tls", no_trust_store)
    with vendor([200]) as v:
        (batch,) = _approved(broker, v.url)
        outcomes = _forwarder(broker).deliver_due()
        assert [o.outcome for o in outcomes] == ["retrying"]
        assert v.received == []
    receipt = broker.history()[-1]
    assert (receipt.action, receipt.batch_id) == ("retrying", batch) and "no trust store" in str(receipt.detail)


def test_deliver_all_sends_what_is_due_and_says_what_is_left(broker: Broker) -> None:
    with vendor([503]) as v:
        (batch,) = _approved(broker, v.url)
        forwarder = _forwarder(broker)
        try:
            outcomes, remaining = forwarder.deliver_all(0)
        finally:
            forwarder.close()
        assert [(o.batch_id, o.outcome, o.status) for o in outcomes] == [(batch, "retrying", 503)]
        assert [(d.batch_id, d.waiting_for) for d in remaining] == [(batch, None)]
        assert remaining[0].next_attempt_at == outcomes[0].next_attempt_at
        assert len(v.received) == 1


def test_deliver_all_waits_by_the_brokers_clock(home: Path) -> None:
    """The pause until the next retry is measured on the clock the retry is due in: a
    broker whose clock runs a year ahead still retries a second later, not never."""
    broker = Broker.open(Locations.under(home), lambda: datetime.now(UTC) + timedelta(days=365))
    try:
        with vendor([(503, {"Retry-After": "1"}), 200]) as v:
            _approved(broker, v.url)
            forwarder = _forwarder(broker)
            started = time.monotonic()
            outcomes, remaining = forwarder.deliver_all(8)
            assert [o.outcome for o in outcomes] == ["retrying", "delivered"]
            assert remaining == [] and len(v.received) == 2
            assert time.monotonic() - started < 6
    finally:
        broker.close()


def test_deliver_all_does_not_wait_for_credentials_no_wait_can_bring(broker: Broker) -> None:
    from keyring.backends import fail

    with vendor([200]) as v:
        (batch,) = _approved(broker, v.url, auth="bearer")
        forwarder = _forwarder(broker, secret_store=SecretStore(fail.Keyring()))
        started = time.monotonic()
        try:
            outcomes, remaining = forwarder.deliver_all(60)
        finally:
            forwarder.close()
        assert time.monotonic() - started < 10
        assert [o.outcome for o in outcomes] == ["waiting for credentials"]
        assert [(d.batch_id, d.waiting_for) for d in remaining] == [(batch, "credentials")]
        assert v.received == []
