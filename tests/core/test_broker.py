from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tests.support.builders import Clock, allowed, tiny
from tray_app.cli import explain
from tray_app.core import Broker, Locations, Manifest, Remedy, Scope
from tray_app.core.errors import (
    AuthError,
    BlockedError,
    ConflictError,
    DigestMismatch,
    InputError,
    NotFoundError,
    ScopeError,
)
from tray_app.core.rules.manifest import manifest_from_obj
from tray_app.core.rules.payload import sha256_hex

EVENT = {"event": "crop", "ts": "2026-11-24T10:11:12Z", "app_version": "3.1.4", "account_email": "a@b.c"}


def _one_batch(broker: Broker, app_id: str, reports: list[dict[str, object]] | None = None) -> str:
    result = broker.ingest(app_id, reports or [EVENT])
    assert result.accepted
    (closed,) = broker.close_batches(force=True)
    return closed.batch_id


def _statuses(broker: Broker) -> dict[str, str]:
    return {b.batch_id: b.status for b in broker.pending()}


def _db_rows(broker: Broker, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(broker.store.path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# -- registration and consent ----------------------------------------------------------


def test_register_gives_a_token_stored_only_as_a_hash(broker: Broker, photoedit: Manifest) -> None:
    reg = broker.register(photoedit)
    assert reg.created and reg.status == "awaiting_consent"
    assert len(reg.token) >= 43  # 256 bits, URL-safe base64
    assert broker.authenticate(reg.token).app_id == photoedit.app_id
    raw = Path(broker.store.path).read_bytes() + Path(str(broker.store.path) + "-wal").read_bytes()
    assert reg.token.encode() not in raw
    with pytest.raises(AuthError):
        broker.authenticate(reg.token[:-1] + ("A" if reg.token[-1] != "A" else "B"))
    with pytest.raises(AuthError):
        broker.authenticate("")


def test_an_app_id_taken_by_another_token_is_refused(broker: Broker) -> None:
    token = broker.register(tiny()).token
    with pytest.raises(ConflictError, match="already registered"):
        broker.register(tiny(version=2))
    with pytest.raises(ConflictError, match="already registered"):
        broker.register(tiny(version=2), token="wrong")
    with pytest.raises(ConflictError, match="raise 'version'"):
        broker.register(tiny(purpose="changed"), token=token)
    broker.register(tiny(version=2), token=token)
    with pytest.raises(ConflictError, match="older"):
        broker.register(tiny(version=1), token=token)
    assert broker.app("org.example.tiny").manifest.version == 2
    again = broker.register(tiny(version=2), token=token)
    assert not again.created and again.change is None


def test_a_new_token_from_the_person_replaces_the_old(broker: Broker) -> None:
    old = broker.register(tiny()).token
    new = broker.register(tiny(), new_token=True).token
    assert new != old
    assert broker.authenticate(new).app_id == "org.example.tiny"
    with pytest.raises(AuthError):
        broker.authenticate(old)


def test_reports_before_consent_are_held_then_reviewed(broker: Broker, photoedit: Manifest) -> None:
    broker.register(photoedit)
    broker.set_policy(photoedit.app_id, "approve")
    batch = _one_batch(broker, photoedit.app_id)
    assert _statuses(broker) == {batch: "held"}
    with pytest.raises(ConflictError, match="Allow it first"):
        broker.approve(batch)
    broker.set_consent(photoedit.app_id, True)
    # Collected before the app was allowed: reviewed by the person, despite policy approve.
    assert _statuses(broker) == {batch: "pending"}
    assert broker.history() == []


def test_blocking_deletes_what_waits_and_refuses_more(broker: Broker, photoedit: Manifest) -> None:
    broker.register(photoedit)
    held = _one_batch(broker, photoedit.app_id)
    broker.ingest(photoedit.app_id, [EVENT, EVENT])
    broker.set_consent(photoedit.app_id, False)
    assert broker.pending() == []
    assert _db_rows(broker, "SELECT count(*) FROM reports") == [(0,)]
    receipts = broker.history()
    assert [r.action for r in receipts] == ["discarded", "discarded"]
    assert {r.batch_id for r in receipts} >= {held}
    assert sorted(r.detail["reports"] for r in receipts) == [1, 2]
    assert all(r.detail["reason"] == "app blocked" for r in receipts)
    with pytest.raises(BlockedError):
        broker.ingest(photoedit.app_id, [EVENT])


def test_unknown_app(broker: Broker) -> None:
    # The core's words name no shell; the CLI adds its command for the remedy.
    with pytest.raises(NotFoundError, match=r"No app 'org\.nope\.x' is registered") as caught:
        broker.ingest("org.nope.x", [EVENT])
    assert "telemetry-tray" not in caught.value.message
    assert caught.value.remedy == Remedy.SEE_APPS
    assert "See the registered apps with: telemetry-tray apps" in explain(caught.value)
    with pytest.raises(NotFoundError):
        broker.set_consent("org.nope.x", True)


# -- ingest and windows ----------------------------------------------------------------


def test_ingest_reports_rejections_and_drops(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    result = broker.ingest(photoedit.app_id, [EVENT, {"event": "nope"}, {"event": "open", "mouse_x": 3}])
    assert result.to_obj() == {
        "accepted": 2,
        "rejected": [{"index": 1, "error": "field 'event': 'nope' is not one of the declared values"}],
        "dropped_fields": ["mouse_x"],
    }
    assert broker.view(result.batch_id).dropped == {"mouse_x": 1}  # type: ignore[arg-type]
    assert b"mouse_x" not in b"".join(row[0].encode() for row in _db_rows(broker, "SELECT body FROM reports"))


def test_all_rejected_changes_nothing(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    result = broker.ingest(photoedit.app_id, [{"event": 1}, "x"])
    assert result.accepted == 0 and len(result.rejected) == 2
    assert broker.pending() == []


def test_windows_follow_the_cadence(broker: Broker, clock: Clock, notesync: Manifest) -> None:
    allowed(broker, notesync)  # hourly
    report = {"sync_result": "ok"}
    first = broker.ingest(notesync.app_id, [report]).batch_id
    clock.advance(minutes=20)  # 10:50, same hour
    assert broker.ingest(notesync.app_id, [report]).batch_id == first
    assert broker.close_batches() == []  # the window has not ended
    clock.advance(minutes=15)  # 11:05: the next report closes the old window
    second = broker.ingest(notesync.app_id, [report]).batch_id
    assert second != first
    pending = {b.batch_id: b for b in broker.pending()}
    assert pending[first].status == "pending" and pending[first].reports == 2
    assert (pending[first].window_start, pending[first].window_end) == (
        "2026-11-24T10:00:00Z",
        "2026-11-24T11:00:00Z",
    )
    assert pending[second].status == "open"
    clock.advance(hours=1)
    assert [c.batch_id for c in broker.close_batches()] == [second]


# -- policies --------------------------------------------------------------------------


def test_policy_approve_uses_the_saved_scope(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    broker.set_policy(photoedit.app_id, "approve")
    batch = _one_batch(broker, photoedit.app_id)
    view = broker.view(batch)
    assert view.batch.status == "approved" and view.batch.decided_by == "policy"
    assert view.payload is not None
    assert "account_email" not in view.payload.obj()["scope"]["fields"]
    assert b"a@b.c" not in view.payload.body
    (receipt,) = broker.history()
    assert receipt.action == "approved" and receipt.detail["by"] == "policy"
    assert receipt.detail["payload_sha256"] == view.payload.sha256 == sha256_hex(view.payload.body)


def test_policy_discard_keeps_nothing(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    broker.set_policy(photoedit.app_id, "discard")
    batch = _one_batch(broker, photoedit.app_id)
    view = broker.view(batch)
    assert view.batch.status == "discarded" and view.payload is None
    assert _db_rows(broker, "SELECT count(*) FROM reports") == [(0,)]
    assert [r.action for r in broker.history()] == ["discarded"]


def test_policy_paused_holds_without_asking(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    broker.set_policy(photoedit.app_id, "paused")
    batch = _one_batch(broker, photoedit.app_id)
    assert _statuses(broker) == {batch: "held"}
    broker.set_policy(photoedit.app_id, "ask")
    assert _statuses(broker) == {batch: "pending"}


def test_pause_all_holds_every_app(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    broker.set_policy(photoedit.app_id, "approve")
    broker.set_paused_all(True)
    batch = _one_batch(broker, photoedit.app_id)
    assert broker.paused_all and _statuses(broker) == {batch: "held"}
    broker.set_paused_all(False)
    assert broker.view(batch).batch.status == "approved"


def test_unknown_policy(broker: Broker, photoedit: Manifest) -> None:
    broker.register(photoedit)
    with pytest.raises(Exception, match="not a policy"):
        broker.set_policy(photoedit.app_id, "sometimes")


# -- approve and discard ---------------------------------------------------------------


def test_what_you_saw_is_what_is_stored(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    batch = _one_batch(broker, photoedit.app_id, [EVENT, {**EVENT, "duration_ms": 77}])
    scope = broker.edited_scope(batch, exclude=["app_version"], coarsen={"ts": "day"})
    preview = broker.view(batch, scope)
    assert preview.payload is not None
    view = broker.approve(batch, scope, expected_sha256=preview.payload.sha256)
    assert view.payload == preview.payload
    assert broker.store.payload(batch) == preview.payload.body
    sent = preview.payload.obj()
    assert sent["reports"] == [
        {"event": "crop", "ts": "2026-11-24T00:00:00Z"},
        {"event": "crop", "ts": "2026-11-24T00:00:00Z", "duration_ms": 77},
    ]
    # The raw reports (with the excluded fields) are gone once the bytes are kept.
    assert _db_rows(broker, "SELECT count(*) FROM reports") == [(0,)]
    assert view.reports == 2
    (receipt,) = broker.history()
    assert receipt.detail["payload_sha256"] == preview.payload.sha256
    assert receipt.detail["scope"] == scope.to_obj()


def test_a_stale_preview_approves_nothing(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    broker.ingest(photoedit.app_id, [EVENT])
    (batch,) = broker.pending()
    seen = broker.view(batch.batch_id).payload
    assert seen is not None
    broker.ingest(photoedit.app_id, [EVENT])  # the open batch grows after the preview
    with pytest.raises(DigestMismatch):
        broker.approve(batch.batch_id, expected_sha256=seen.sha256)
    assert broker.view(batch.batch_id).batch.status == "open"
    assert broker.view(batch.batch_id).reports == 2
    assert broker.history() == []


def test_a_bad_scope_changes_nothing(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    batch = _one_batch(broker, photoedit.app_id)
    with pytest.raises(ScopeError):
        broker.approve(batch, Scope(("event", "nope")))
    with pytest.raises(ScopeError):
        broker.approve(batch, Scope(("event",), {"event": "day"}))
    assert broker.view(batch).batch.status == "pending" and broker.history() == []


def test_a_batch_is_decided_once(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    batch = _one_batch(broker, photoedit.app_id)
    broker.approve(batch)
    with pytest.raises(ConflictError, match="already approved"):
        broker.approve(batch)
    with pytest.raises(ConflictError, match="already approved"):
        broker.discard(batch)
    other = _one_batch(broker, photoedit.app_id)
    view = broker.discard(other)
    assert view.payload is None and view.reports == 1
    with pytest.raises(ConflictError, match="already discarded"):
        broker.approve(other)
    assert [r.action for r in broker.history()] == ["approved", "discarded"]


def test_batch_prefix_lookup(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    batch = _one_batch(broker, photoedit.app_id)
    assert broker.view(batch[:8]).batch.batch_id == batch
    with pytest.raises(NotFoundError):
        broker.view("abc")
    with pytest.raises(NotFoundError):
        broker.view("%%%%")


def test_remember_applies_the_scope_to_the_next_batch(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    first = _one_batch(broker, photoedit.app_id)
    scope = broker.edited_scope(first, exclude=["os_version", "install_id"], coarsen={"ts": "day"}, mode="aggregate")
    broker.approve(first, scope, remember=True)
    app = broker.app(photoedit.app_id)
    assert app.policy == "approve" and app.scope == scope
    second = _one_batch(broker, photoedit.app_id)
    view = broker.view(second)
    assert view.batch.status == "approved" and view.scope == scope
    assert view.payload is not None and "aggregates" in view.payload.obj()


def test_concurrent_approvals_decide_once(home: Path, clock: Clock, photoedit: Manifest) -> None:
    brokers = [Broker.open(Locations.under(home), clock) for _ in range(4)]
    allowed(brokers[0], photoedit)
    batch = _one_batch(brokers[0], photoedit.app_id)
    outcomes: list[str] = []

    def decide(b: Broker, verb: str) -> None:
        try:
            (b.approve if verb == "approve" else b.discard)(batch)
            outcomes.append(verb)
        except ConflictError:
            outcomes.append("refused")

    threads = [
        threading.Thread(target=decide, args=(b, v)) for b, v in zip(brokers, ["approve", "discard"] * 2, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes).count("refused") == 3
    assert len(brokers[0].history()) == 1
    assert brokers[0].verify_history().ok


def test_concurrent_ingest_loses_nothing(home: Path, clock: Clock, photoedit: Manifest) -> None:
    brokers = [Broker.open(Locations.under(home), clock) for _ in range(4)]
    allowed(brokers[0], photoedit)

    def send(b: Broker) -> None:
        for _ in range(50):
            assert b.ingest(photoedit.app_id, [EVENT] * 10).accepted == 10

    threads = [threading.Thread(target=send, args=(b,)) for b in brokers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(b.reports for b in brokers[0].pending()) == 4 * 50 * 10
    assert len(brokers[0].pending()) == 1


# -- manifest versions -----------------------------------------------------------------


def test_a_new_version_excludes_new_fields_and_shows_the_change(broker: Broker) -> None:
    token = allowed(broker, tiny())
    first = _one_batch(broker, "org.example.tiny", [{"event": "a", "n": 1}])
    broker.approve(first)
    broker.ingest("org.example.tiny", [{"event": "old-version"}])
    fields = [*tiny().to_obj()["fields"], {"name": "extra", "type": "string", "description": "new"}]
    change = broker.register(tiny(version=2, fields=fields), token=token).change
    assert change is not None and change.added == ("extra",)
    # The open batch of version 1 was closed; it still renders with version 1.
    (old,) = broker.pending()
    assert old.status == "pending"
    broker.ingest("org.example.tiny", [{"event": "b", "extra": "x"}])
    new = next(b for b in broker.pending() if b.status == "open")
    view = broker.view(new.batch_id)
    assert "extra" not in view.scope.fields  # type: ignore[union-attr]
    assert view.change is not None and view.change.added == ("extra",)
    assert view.payload is not None and b'"extra"' not in view.payload.body.split(b'"reports"')[1]
    included = broker.view(new.batch_id, broker.edited_scope(new.batch_id, include=["extra"]))
    assert included.payload is not None and included.payload.obj()["reports"] == [{"event": "b", "extra": "x"}]
    assert broker.app("org.example.tiny").status == "allowed"


def test_a_new_app_leaves_out_its_stable_id_and_a_chosen_one_stays_chosen(broker: Broker, photoedit: Manifest) -> None:
    token = allowed(broker, photoedit)
    start = broker.app(photoedit.app_id).scope
    assert "install_id" not in start.fields and "account_email" not in start.fields
    first = _one_batch(broker, photoedit.app_id, [{**EVENT, "install_id": "i-1"}])
    assert b"i-1" not in broker.view(first).payload.body  # type: ignore[union-attr]
    # The person includes the pseudonymous id and remembers it: a new version keeps it.
    broker.approve(first, broker.edited_scope(first, include=["install_id"]), remember=True)
    fields = [*photoedit.to_obj()["fields"], {"name": "extra", "type": "string", "description": "new"}]
    bumped = manifest_from_obj({**photoedit.to_obj(), "version": photoedit.version + 1, "fields": fields})
    broker.register(bumped, token=token)
    assert "install_id" in broker.app(photoedit.app_id).scope.fields


def test_a_misspelt_field_in_any_edit_is_refused_and_changes_nothing(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    batch = _one_batch(broker, photoedit.app_id)
    for edit in ({"exclude": ["app_versio"]}, {"include": ["install_idd"]}, {"coarsen": {"tss": "day"}}):
        with pytest.raises(ScopeError, match="is not a field of PhotoEdit; its fields are event, ts, "):
            broker.edited_scope(batch, **edit)  # type: ignore[arg-type]
    with pytest.raises(ScopeError, match="'tss' is excluded"):
        broker.approve(batch, Scope(("event", "ts"), {"tss": "day"}), remember=True)
    assert _statuses(broker) == {batch: "pending"} and broker.history() == []
    assert broker.app(photoedit.app_id).policy == "ask"


def test_an_app_removed_elsewhere_and_registered_again_is_read_anew(broker: Broker, home: Path, clock: Clock) -> None:
    # The CLI's `remove` runs in another process than the instance: the instance's broker
    # must not go on checking reports and sending batches by the removed manifest.
    old = tiny(endpoint="https://old.example/v1")
    allowed(broker, old)
    broker.ingest(old.app_id, [{"event": "a", "who": "x"}])  # the instance has read version 1
    other = Broker.open(Locations.under(home), clock)
    try:
        (open_batch,) = other.pending()
        other.remove_app(old.app_id)
        fields = [f for f in old.to_obj()["fields"] if f["name"] != "who"]
        allowed(other, tiny(endpoint="https://new.example/v1", fields=fields))  # version 1 again
    finally:
        other.close()
    result = broker.ingest(old.app_id, [{"event": "b", "who": "secret"}])
    assert result.dropped_fields == ["who"]  # undeclared now: not stored
    (batch,) = broker.close_batches(force=True)
    view = broker.approve(batch.batch_id)
    assert view.manifest.endpoint == "https://new.example/v1"
    (claim,) = broker.deliveries.claim("test")
    assert claim.endpoint == "https://new.example/v1" and b"secret" not in claim.payload
    assert open_batch.batch_id != batch.batch_id


def test_a_changed_endpoint_needs_consent_again(broker: Broker) -> None:
    token = allowed(broker, tiny())
    broker.set_policy("org.example.tiny", "approve")
    reg = broker.register(tiny(version=2, endpoint="https://elsewhere.example.net/v1"), token=token)
    assert reg.status == "awaiting_consent"
    batch = _one_batch(broker, "org.example.tiny", [{"event": "a"}])
    assert _statuses(broker) == {batch: "held"}
    broker.set_consent("org.example.tiny", True)
    assert _statuses(broker) == {batch: "pending"}  # collected before the new consent


# -- retention -------------------------------------------------------------------------


def test_old_undecided_batches_expire(broker: Broker, clock: Clock, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    broker.set_retention_days(7)
    batch = _one_batch(broker, photoedit.app_id)
    clock.advance(days=7)
    assert broker.apply_retention().expired == []  # window ended 6 days 13.5 h ago
    clock.advance(days=1)
    sweep = broker.apply_retention()
    assert sweep.expired == [batch]
    assert broker.pending() == []
    assert broker.view(batch).batch.status == "expired"
    assert _db_rows(broker, "SELECT count(*) FROM reports") == [(0,)]
    (receipt,) = broker.history()
    assert receipt.action == "expired" and receipt.detail == {
        "reason": "not decided within 7 days",
        "reports": 1,
    }
    with pytest.raises(ConflictError):
        broker.approve(batch)


def test_old_payloads_are_purged(broker: Broker, clock: Clock, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    batch = _one_batch(broker, photoedit.app_id)
    view = broker.approve(batch)
    # Delivery comes with the forwarder; mark it delivered as the forwarder will.
    with broker.store.write():
        broker.store.update_batch(batch, status="delivered")
    clock.advance(days=29)
    assert broker.apply_retention().purged == []
    clock.advance(days=2)
    assert broker.apply_retention().purged == [batch]
    assert broker.store.payload(batch) is None
    receipts = broker.history()
    assert [r.action for r in receipts] == ["approved", "expired"]
    assert receipts[1].detail["purged"] == "payload"
    assert receipts[1].detail["payload_sha256"] == view.payload.sha256  # type: ignore[union-attr]
    assert broker.verify_history().ok


def test_retention_bounds(broker: Broker) -> None:
    with pytest.raises(Exception, match="1 to 3650"):
        broker.set_retention_days(0)
    assert broker.retention_days == 30


def test_overview_counts(broker: Broker, photoedit: Manifest, notesync: Manifest) -> None:
    allowed(broker, photoedit)
    broker.register(notesync)
    _one_batch(broker, photoedit.app_id)
    broker.ingest(photoedit.app_id, [EVENT])
    o = broker.overview()
    assert (o.apps, o.awaiting_consent, o.pending, o.open, o.held, o.paused_all) == (2, 1, 1, 1, 0, False)


def test_an_open_batch_is_approved_only_against_a_digest(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    batch = broker.ingest(photoedit.app_id, [EVENT]).batch_id
    assert batch is not None
    with pytest.raises(ConflictError, match="still collecting"):
        broker.approve(batch)
    seen = broker.view(batch).payload
    assert seen is not None
    assert broker.approve(batch, expected_sha256=seen.sha256).payload == seen


@pytest.mark.parametrize(
    ("change", "reconsent"),
    [
        ({"purpose": "Something else"}, True),
        ({"vendor": "Other Corp"}, True),
        ({"retention_days": 365}, True),
        ({"retention_days": 7}, False),
        ({"name": "Tiny Pro"}, False),
    ],
)
def test_material_manifest_changes_need_consent_again(
    broker: Broker, change: dict[str, object], reconsent: bool
) -> None:
    token = allowed(broker, tiny())
    reg = broker.register(tiny(version=2, **change), token=token)
    assert reg.updated and bool(reg.change and reg.change.reconsent) is reconsent
    assert reg.status == ("awaiting_consent" if reconsent else "allowed")


def test_approved_batches_age_from_their_approval(broker: Broker, clock: Clock, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    broker.set_retention_days(7)
    broker.ingest(photoedit.app_id, [EVENT, EVENT])
    clock.advance(days=6)
    (closed,) = broker.close_batches()
    broker.approve(closed.batch_id)
    clock.advance(days=6)
    assert broker.apply_retention().expired == []
    clock.advance(days=2)
    assert broker.apply_retention().expired == [closed.batch_id]
    assert broker.history()[-1].detail == {"reason": "not delivered within 7 days", "reports": 2}


def test_a_clock_moving_back_opens_a_new_batch(broker: Broker, clock: Clock, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    first = broker.ingest(photoedit.app_id, [EVENT]).batch_id
    clock.advance(days=-2)
    second = broker.ingest(photoedit.app_id, [EVENT]).batch_id
    assert second != first
    view = broker.view(second)  # type: ignore[arg-type]
    assert view.batch.window_start == "2026-11-22T00:00:00Z"


def test_tidy_closes_ended_windows_and_applies_retention(broker: Broker, clock: Clock, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    batch = broker.ingest(photoedit.app_id, [EVENT]).batch_id
    clock.advance(days=1)
    closed, sweep = broker.tidy()
    assert [c.batch_id for c in closed] == [batch] and sweep.expired == []
    clock.advance(days=31)
    closed, sweep = broker.tidy()
    assert closed == [] and sweep.expired == [batch]


def test_removing_an_app_discards_what_waits_and_keeps_the_history(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    first = _one_batch(broker, photoedit.app_id)
    broker.approve(first)
    broker.ingest(photoedit.app_id, [EVENT])
    broker.remove_app(photoedit.app_id)
    assert broker.apps() == [] and broker.pending() == []
    assert _db_rows(broker, "SELECT count(*) FROM reports") == [(0,)]
    assert _db_rows(broker, "SELECT count(*) FROM batches") == [(0,)]
    assert _db_rows(broker, "SELECT count(*) FROM deliveries") == [(0,)]
    assert [r.action for r in broker.history()] == ["approved", "discarded", "discarded"]
    assert broker.verify_history().ok
    with pytest.raises(NotFoundError):
        broker.remove_app(photoedit.app_id)
    again = broker.register(photoedit)  # the app id is free again
    assert again.created


def test_preferences(broker: Broker) -> None:
    assert broker.preference("notifications") == "on"
    broker.set_preference("notifications", "off")
    assert broker.preference("notifications") == "off"
    with pytest.raises(InputError):
        broker.preference("colour")


def test_the_journal_writes_only_inside_the_brokers_transaction(broker: Broker, photoedit: Manifest) -> None:
    allowed(broker, photoedit)
    batch_id = broker.ingest(photoedit.app_id, [{"event": "open", "app_version": "3.2.1"}]).batch_id
    assert batch_id is not None
    batch = broker.store.batch(batch_id)
    assert batch is not None
    receipts = broker.history()
    with pytest.raises(RuntimeError, match="inside the broker's write transaction"):
        broker.journal.discard(batch, by="person")
    with pytest.raises(RuntimeError), broker.reading():
        broker.journal.record(batch, "discarded", {"by": "person"})
    # Nothing was written: the batch and its reports are as they were, and no receipt came.
    assert broker.history() == receipts
    assert broker.view(batch_id).batch.status == "open" and broker.view(batch_id).reports == 1
    broker.discard(batch_id)  # through the broker, inside its write
    assert [r.action for r in broker.history()][len(receipts) :] == ["discarded"]
