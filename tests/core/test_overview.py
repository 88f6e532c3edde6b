"""Broker.overview: the state at a glance, in one read, as the tray and `status` need it."""

from __future__ import annotations

from keyring.backends import fail

from tests.support.builders import allowed, tiny
from tests.support.fake_vendor import vendor
from tray_app.core import Broker, Forwarder, Manifest
from tray_app.core.platform.secrets import SecretStore

EVENT = {"event": "crop", "app_version": "3.1.4"}


def _closed(broker: Broker, app_id: str) -> str:
    broker.ingest(app_id, [EVENT] if "photoedit" in app_id else [{"event": "e"}])
    (closed,) = broker.close_batches(force=True)
    return closed.batch_id


def test_the_overview_says_who_asks_what_waits_and_what_went_wrong(
    broker: Broker, photoedit: Manifest, notesync: Manifest
) -> None:
    allowed(broker, photoedit)
    broker.register(notesync)  # asks for consent
    first, second = _closed(broker, photoedit.app_id), _closed(broker, photoedit.app_id)
    with vendor([400]) as v:
        held = tiny(auth="bearer", endpoint=v.url)  # no keyring: waits for credentials
        allowed(broker, held)
        broker.approve(_closed(broker, held.app_id))
        failing = tiny(app_id="org.example.fails", name="Fails", endpoint=v.url)
        allowed(broker, failing)
        broker.approve(_closed(broker, failing.app_id))
        forwarder = Forwarder(broker.deliveries, SecretStore(fail.Keyring()))
        try:
            outcomes = {o.app_id: o.outcome for o in forwarder.deliver_due()}
        finally:
            forwarder.close()
    assert outcomes == {held.app_id: "waiting for credentials", failing.app_id: "failed"}
    broker.ingest(photoedit.app_id, [EVENT])  # still collecting: not waiting for the person

    o = broker.overview()
    assert o.names == {
        photoedit.app_id: "PhotoEdit",
        notesync.app_id: "NoteSync",
        held.app_id: "Tiny",
        failing.app_id: "Fails",
    }
    assert o.asking == (notesync.app_id,) and o.awaiting_consent == 1
    assert o.waiting == {photoedit.app_id: (first, second)} and o.pending == 2
    assert (o.open, o.approved) == (1, 1)  # the failed one is no longer approved
    assert o.failed_recently == 1 and o.waiting_for_credentials == 1
    assert o.name(notesync.app_id) == "NoteSync" and o.name("org.gone.app") == "org.gone.app"
    # The rest of the glance: every app counted, nothing held back by a pause, none dropped.
    assert (o.apps, o.held, o.paused_all, o.spool_dropped) == (4, 0, False, 0)
    assert o.retention_days == broker.retention_days
