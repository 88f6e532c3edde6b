"""The credentials service: a secret stored wakes its deliveries; removing an app clears it."""

from __future__ import annotations

import pytest
from keyring import errors as kerrors
from keyring.backends import fail

from tests.support.builders import allowed, tiny
from tests.support.keyrings import MemoryKeyring
from tray_app.core import Broker, Credentials, Forwarder, InputError, NotFoundError, Removal
from tray_app.core.platform.secrets import SERVICE, SecretStore

SECRET = "tok-3f9a1c77e2b04d-very-secret"
APP = "org.example.tiny"


class LockedKeyring(MemoryKeyring):
    """A keyring that is there but refuses (locked, its prompt dismissed)."""

    def get_password(self, service: str, username: str) -> str | None:
        raise kerrors.KeyringLocked("the collection is locked")


def _waiting_for_credentials(broker: Broker, secrets: SecretStore) -> str:
    manifest = tiny(auth="bearer", endpoint="http://127.0.0.1:9/v1")
    allowed(broker, manifest)
    broker.ingest(manifest.app_id, [{"event": "e"}])
    (closed,) = broker.close_batches(force=True)
    broker.approve(closed.batch_id)
    forwarder = Forwarder(broker.deliveries, secrets)
    try:
        (outcome,) = forwarder.deliver_due()
    finally:
        forwarder.close()
    assert outcome.outcome == "waiting for credentials"
    return closed.batch_id


def test_storing_a_secret_wakes_the_deliveries_that_waited_for_it(broker: Broker) -> None:
    keyring = MemoryKeyring()
    secrets = SecretStore(keyring)
    batch = _waiting_for_credentials(broker, secrets)
    woken: list[str] = []
    broker.on_approved.append(lambda: woken.append("wake"))
    assert Credentials(broker, secrets).set(APP, SECRET + "\n") == 1
    assert keyring.items == {(SERVICE, APP): [SECRET]}
    assert woken == ["wake"]  # the delivery loop hears of it at once
    (delivery,) = broker.deliveries.open_deliveries()
    assert delivery.batch_id == batch and delivery.waiting_for is None
    assert Credentials(broker, secrets).set(APP, "another") == 0  # nothing waits any more


def test_a_vendor_without_auth_takes_no_secret_and_an_unknown_app_none_either(broker: Broker) -> None:
    keyring = MemoryKeyring()
    credentials = Credentials(broker, SecretStore(keyring))
    allowed(broker, tiny())
    with pytest.raises(InputError, match="needs no credentials"):
        credentials.set(APP, SECRET)
    for call in (lambda: credentials.set("org.nope.x", SECRET), lambda: credentials.clear("org.nope.x")):
        with pytest.raises(NotFoundError):
            call()
    with pytest.raises(NotFoundError):
        credentials.remove_app("org.nope.x")
    assert keyring.items == {}


def test_clear_removes_the_secret(broker: Broker) -> None:
    keyring = MemoryKeyring()
    credentials = Credentials(broker, SecretStore(keyring))
    allowed(broker, tiny(auth="header:X-Api-Key"))
    credentials.set(APP, SECRET)
    assert credentials.clear(APP) is True and keyring.items == {}
    assert credentials.clear(APP) is False


def test_removing_an_app_clears_its_secret_and_says_what_went(broker: Broker) -> None:
    keyring = MemoryKeyring()
    secrets = SecretStore(keyring)
    _waiting_for_credentials(broker, secrets)
    keyring.set_password(SERVICE, APP, SECRET)  # stored behind the service's back (another tool)
    removal = Credentials(broker, secrets).remove_app(APP)
    assert removal == Removal(APP, "Tiny", discarded=1, secret_cleared=True)
    assert keyring.items == {} and broker.apps() == []
    assert [r.action for r in broker.history()][-1] == "discarded"


def test_removing_an_app_without_a_keyring_removes_it_quietly(broker: Broker) -> None:
    allowed(broker, tiny(auth="bearer"))
    removal = Credentials(broker, SecretStore(fail.Keyring())).remove_app(APP)
    assert removal == Removal(APP, "Tiny", discarded=0, secret_cleared=False)
    assert broker.apps() == []


def test_a_keyring_that_refuses_is_reported_and_the_app_is_removed_all_the_same(broker: Broker) -> None:
    allowed(broker, tiny(auth="bearer"))
    removal = Credentials(broker, SecretStore(LockedKeyring())).remove_app(APP)
    assert broker.apps() == []
    assert not removal.secret_cleared
    assert removal.problem.startswith("Tiny was removed, but its credentials could not be cleared:")
    assert SECRET not in removal.problem


def test_an_app_of_a_vendor_without_auth_never_touches_the_keyring(broker: Broker) -> None:
    class Untouchable(MemoryKeyring):
        def get_password(self, service: str, username: str) -> str | None:
            raise AssertionError("the keyring was asked")

    allowed(broker, tiny())
    assert Credentials(broker, SecretStore(Untouchable())).remove_app(APP).problem == ""


def test_removing_clears_a_secret_an_earlier_version_needed(broker: Broker) -> None:
    # Version 1 sent with a bearer secret, version 2 needs none: the secret still goes.
    token = allowed(broker, tiny(auth="bearer"))
    keyring = MemoryKeyring()
    credentials = Credentials(broker, SecretStore(keyring))
    credentials.set(APP, SECRET)
    broker.register(tiny(version=2, auth="none"), token=token)
    removal = credentials.remove_app(APP)
    assert removal.secret_cleared and removal.problem == ""
    assert SecretStore(keyring).get(APP) is None
