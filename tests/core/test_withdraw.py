"""Stuck deliveries in the core: withdrawing an approval, retrying now, and their words.

Withdraw takes back an approved batch that was not sent: it is discarded with a receipt and
never sent afterwards, even by a sender that claimed it before; it is refused while a live
lease holds the batch (its bytes may be on the wire) and for a batch that is not approved.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.builders import PHOTOEDIT, ROOT, Clock, allowed, tiny
from tests.support.fake_vendor import vendor
from tests.support.keyrings import MemoryKeyring
from tray_app.core import (
    Broker,
    ConflictError,
    DeliveryAction,
    DeliveryStage,
    Forwarder,
    Outcome,
    credentials_problem,
    delivery_words,
    wait_words,
)
from tray_app.core.platform.secrets import SecretStore


def _approved(broker: Broker, app_id: str, reports: int = 3) -> str:
    broker.ingest(app_id, [{"event": f"e{n}"} for n in range(reports)])
    (closed,) = broker.close_batches(force=True)
    broker.approve(closed.batch_id)
    return closed.batch_id


def _dead_url() -> str:
    """A loopback address where nothing listens (the port was free a moment ago)."""
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/batches"


def _receipts(broker: Broker, batch_id: str) -> list[tuple[str, dict[str, object]]]:
    return [(str(r.action), dict(r.detail)) for r in broker.history() if r.batch_id == batch_id]


def test_withdrawing_an_approved_batch_discards_it_with_a_receipt_and_it_is_never_sent(
    broker: Broker, clock: Clock
) -> None:
    with vendor([200]) as v:
        manifest = tiny(endpoint=v.url)
        allowed(broker, manifest)
        batch = _approved(broker, manifest.app_id, reports=3)
        sha = broker.view(batch).payload.sha256  # type: ignore[union-attr]
        with closing(Forwarder(broker.deliveries, SecretStore(MemoryKeyring()))) as forwarder:
            # A sender claimed it, then stalled until its lease ran out (a sender that froze).
            (claim,) = broker.deliveries.claim(forwarder.owner, lease_s=30)
            clock.advance(seconds=31)
            view = broker.withdraw(batch[:8])  # a prefix, as the CLI takes it
            assert view.batch.status == "discarded" and view.payload is None
            assert broker.store.payload(batch) is None  # the approved bytes are gone
            # The old claim sends nothing, and its outcome is recorded nowhere.
            assert forwarder.send(claim).outcome == Outcome.NO_LONGER_DUE
            assert broker.deliveries.finish(claim, status=200).outcome == Outcome.ALREADY
            assert forwarder.deliver_due() == []
        assert v.received == []
    assert broker.view(batch).batch.status == "discarded"
    assert _receipts(broker, batch)[-1] == (
        "discarded",
        {"by": "person", "reports": 3, "reason": "withdrawn", "payload_sha256": sha},
    )
    assert [a for a, _ in _receipts(broker, batch)] == ["approved", "discarded"]
    assert broker.verify_history().ok
    assert broker.undelivered() == [] and broker.overview().approved == 0


def test_withdraw_is_refused_while_a_live_lease_holds_the_batch(broker: Broker, clock: Clock) -> None:
    manifest = tiny(endpoint=_dead_url())
    allowed(broker, manifest)
    batch = _approved(broker, manifest.app_id)
    (claim,) = broker.deliveries.claim("sender-1", lease_s=120)
    (shown,) = broker.undelivered()
    assert shown.in_flight
    with pytest.raises(ConflictError) as refused:
        broker.withdraw(batch)
    assert "being sent right now" in refused.value.message and "on the wire" in refused.value.message
    assert refused.value.title == "Being sent"
    assert broker.view(batch).batch.status == "approved"
    assert [a for a, _ in _receipts(broker, batch)] == ["approved"]  # nothing recorded
    # The send finishes and is recorded as usual.
    assert broker.deliveries.finish(claim, status=200).outcome == Outcome.DELIVERED
    # Once the lease is gone (here: it ran out without an answer), it can be withdrawn.
    other = _approved(broker, manifest.app_id)
    broker.deliveries.claim("sender-2", lease_s=60)
    clock.advance(seconds=61)
    assert broker.withdraw(other).batch.status == "discarded"


def test_withdraw_is_refused_for_a_delivered_failed_or_undecided_batch(broker: Broker) -> None:
    with vendor([200, 400]) as v:
        manifest = tiny(endpoint=v.url)
        allowed(broker, manifest)
        with closing(Forwarder(broker.deliveries, SecretStore(MemoryKeyring()))) as forwarder:
            delivered = _approved(broker, manifest.app_id)
            outcomes = {o.batch_id: o.outcome for o in forwarder.deliver_due()}
            failed = _approved(broker, manifest.app_id)  # the vendor answers it 400
            outcomes |= {o.batch_id: o.outcome for o in forwarder.deliver_due()}
    assert outcomes == {delivered: Outcome.DELIVERED, failed: Outcome.FAILED}
    broker.ingest(manifest.app_id, [{"event": "later"}])
    (pending,) = broker.close_batches(force=True)
    before = len(broker.history())
    for batch, words in (
        (delivered, "already delivered; it cannot be taken back"),
        (failed, "failed for good"),
        (pending.batch_id, "not approved, so there is nothing to withdraw; discard it instead"),
    ):
        with pytest.raises(ConflictError) as refused:
            broker.withdraw(batch)
        assert words in refused.value.message
    assert len(broker.history()) == before
    assert broker.view(delivered).batch.status == "delivered"
    assert broker.view(pending.batch_id).batch.status == "pending"


def test_retry_now_makes_a_retrying_batch_due_and_wakes_the_sender(broker: Broker, clock: Clock) -> None:
    dead = _dead_url()
    manifest = tiny(endpoint=dead)
    allowed(broker, manifest)
    batch = _approved(broker, manifest.app_id)
    with closing(Forwarder(broker.deliveries, SecretStore(MemoryKeyring()))) as forwarder:
        (first,) = forwarder.deliver_due()
        assert first.outcome == Outcome.RETRYING
        assert forwarder.deliver_due() == []  # scheduled later: not due now
        woken: list[bool] = []
        broker.on_approved.append(lambda: woken.append(True))
        assert broker.retry_now(batch) is True
        assert woken == [True]
        (again,) = forwarder.deliver_due()  # due at once
        assert again.outcome == Outcome.RETRYING
    (shown,) = broker.undelivered()
    assert shown.attempts == 2 and not shown.in_flight
    words = shown.words(clock.now)
    assert words.stage == DeliveryStage.RETRYING and words.stuck
    assert words.short == "nothing answers at 127.0.0.1"
    assert "Errno" not in words.sentence and "ConnectError" not in words.sentence
    assert "Errno 111" in words.detail or "refused" in words.detail.lower()  # the raw error stays for a tooltip
    assert words.actions == (DeliveryAction.RETRY_NOW, DeliveryAction.WITHDRAW)
    # A batch not approved cannot be retried; paused, nothing is sent.
    broker.set_paused_all(True)
    with pytest.raises(ConflictError, match="Pause all is on"):
        broker.retry_now(batch)
    broker.set_paused_all(False)
    broker.withdraw(batch)
    with pytest.raises(ConflictError, match="nothing to retry"):
        broker.retry_now(batch)


def test_a_batch_waiting_for_credentials_is_stuck_in_words_and_can_be_withdrawn(broker: Broker, clock: Clock) -> None:
    manifest = tiny(auth="bearer", endpoint=_dead_url())
    allowed(broker, manifest)
    batch = _approved(broker, manifest.app_id)
    with closing(Forwarder(broker.deliveries, SecretStore(MemoryKeyring()))) as forwarder:
        (outcome,) = forwarder.deliver_due()
    assert outcome.outcome == Outcome.WAITING_FOR_CREDENTIALS
    overview = broker.overview()
    (stuck,) = overview.stuck()
    assert stuck.batch_id == batch and stuck.waiting_for == "credentials" and stuck.attempts == 0
    words = stuck.words(clock.now)
    assert words.stage == DeliveryStage.WAITING_FOR_CREDENTIALS
    assert words.sentence == (
        "Tiny's vendor needs a secret, and none is stored. Not tried: it waits until the secret is set."
    )
    assert words.actions[0] == DeliveryAction.SET_CREDENTIALS
    # Retry now asks the keyring again (no attempt is spent if it still has nothing).
    assert broker.retry_now(batch)
    assert broker.undelivered()[0].waiting_for is None
    broker.withdraw(batch)
    assert broker.overview().stuck() == () and broker.overview().waiting_for_credentials == 0


def test_a_fresh_approval_is_not_stuck(broker: Broker, clock: Clock) -> None:
    manifest = tiny(endpoint=_dead_url())
    allowed(broker, manifest)
    _approved(broker, manifest.app_id)
    overview = broker.overview()
    assert len(overview.undelivered) == 1 and overview.stuck() == ()
    words = overview.undelivered[0].words(clock.now)
    assert words.stage == DeliveryStage.SENDING and words.actions == (DeliveryAction.WITHDRAW,)


@pytest.mark.parametrize(
    ("status", "error", "short", "reason"),
    [
        (None, "ConnectError: [Errno 111] Connection refused", "nothing answers at h.example",
         "h.example refused the connection: the vendor's server is down or nothing listens at that address"),
        (None, "ConnectError: [Errno -2] Name or service not known", "h.example cannot be found",
         "the name h.example could not be looked up: the computer may be offline, or the address is wrong"),
        (None, "ConnectTimeout: timed out", "h.example does not answer in time", "h.example did not answer in time"),
        (None, "RemoteProtocolError: Server disconnected without sending a response.", "h.example cut the connection",
         "the connection to h.example was cut off before it answered"),
        (None, "TLS verification failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
         "h.example's certificate is not trusted",
         "h.example's TLS certificate could not be verified, so nothing was sent to it"),
        (503, "HTTP 503: {\"error\":\"scripted\"}", "h.example is unavailable",
         "h.example is unavailable for now (HTTP 503 Service Unavailable)"),
        (429, "HTTP 429: slow down", "h.example asks to wait",
         "h.example asked to slow down (HTTP 429 Too Many Requests)"),
        (None, "keyring: The OS keyring is locked.", "the keyring is locked",
         "the OS keyring could not be read (it may be locked)"),
        (None, "SomethingNew: whatever", "cannot reach h.example", "the batch did not get through to h.example"),
    ],
)  # fmt: skip
def test_a_retrying_delivery_says_why_in_words(
    status: int | None, error: str, short: str, reason: str, clock: Clock
) -> None:
    words = delivery_words(
        app_name="Tiny", host="h.example", attempts=3, last_status=status, last_error=error, waiting_for=None,
        next_attempt_at="2026-11-24T10:34:10Z", in_flight=False, now=clock.now,
    )  # fmt: skip
    assert (words.short, words.reason) == (short, reason)
    assert words.progress == "tried 3 times; next try in 4 minutes"  # no timestamp, no microseconds
    assert words.detail == error


def test_waits_are_said_as_a_person_says_them() -> None:
    assert [wait_words(s) for s in (0.2, 1, 45, 61, 150, 3599, 3600, 5400, 7 * 3600, 3 * 86400)] == [
        "now", "in 1 second", "in 45 seconds", "in 1 minute", "in 2 minutes", "in about an hour",
        "in about 1 hour", "in about 2 hours", "in about 7 hours", "in about 3 days",
    ]  # fmt: skip


def test_before_approving_it_says_when_credentials_cannot_be_had() -> None:
    ask = {"app_name": "NoteSync", "vendor": "NoteSync Ltd"}
    assert credentials_problem(**ask, needs_secret=False, keyring_available=False, secret_stored=None) == ""
    assert credentials_problem(**ask, needs_secret=True, keyring_available=True, secret_stored=True) == ""
    no_keyring = credentials_problem(
        **ask, needs_secret=True, keyring_available=False, secret_stored=None, keyring_why="No Secret Service runs."
    )
    assert "no OS keyring is available to hold it (No Secret Service runs)" in no_keyring
    assert "waits, unsent" in no_keyring and "never kept anywhere else" in no_keyring
    none_stored = credentials_problem(**ask, needs_secret=True, keyring_available=True, secret_stored=False)
    assert "none is stored yet" in none_stored
    locked = credentials_problem(**ask, needs_secret=True, keyring_available=True, secret_stored=None)
    assert "could not be read" in locked


def test_the_next_try_counts_from_the_brokers_clock(broker: Broker, clock: Clock) -> None:
    manifest = tiny(endpoint=_dead_url())
    allowed(broker, manifest)
    _approved(broker, manifest.app_id)
    with closing(Forwarder(broker.deliveries, SecretStore(MemoryKeyring()))) as forwarder:
        forwarder.deliver_due()
    (shown,) = broker.overview().stuck()
    # The first backoff is 2.5 to 5 seconds.
    assert shown.words(clock.now).progress in {f"tried once; next try in {n} seconds" for n in (2, 3, 4, 5)}
    assert shown.words(clock.now + timedelta(hours=2)).progress == "tried once; trying again now"


def test_the_cli_withdraws_an_approved_batch(tmp_path: Path) -> None:
    env = {**os.environ, "TELEMETRY_TRAY_HOME": str(tmp_path / "home")}

    def tt(*args: str, input: str | None = None, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "tray_app", *args], input=input, capture_output=True,
                                text=True, env=env, cwd=ROOT, check=False)  # fmt: skip
        assert result.returncode == code, (result.stdout, result.stderr)
        return result

    tt("register", str(PHOTOEDIT))
    tt("consent", "org.example.photoedit", "allow")
    tt("submit", "org.example.photoedit", input=json.dumps({"reports": [{"event": "crop"}] * 4}))
    tt("close-batches")
    (batch,) = json.loads(tt("pending", "--json").stdout)
    tt("approve", batch["batch_id"])
    out = tt("withdraw", batch["batch_id"][:10]).stdout
    assert out.startswith(f"Withdrew {batch['batch_id']}:") and "nothing was sent" in out
    last = json.loads(tt("history", "--json").stdout)[-1]
    assert (last["action"], last["detail"]["reason"], last["detail"]["reports"]) == ("discarded", "withdrawn", 4)
    again = tt("withdraw", batch["batch_id"], code=2)
    reason = f"Batch {batch['batch_id']} is already discarded; there is nothing to withdraw."
    assert again.stderr == f"telemetry-tray: {reason}\n"
