"""Vendor credentials of registered apps: the keyring and the broker together.

Two rules that every shell (the Settings window, the CLI) follows, written once:

* storing an app's secret wakes its deliveries that waited for credentials;
* removing an app clears its secret from the keyring, so a secret left behind is never
  sent for the next app that registers under the same id.

The secrets themselves are only ever in the OS keyring
(:class:`~tray_app.core.platform.secrets.SecretStore`); transactions start only in the
broker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .broker import Broker
from .errors import CredentialsError, InputError
from .platform.secrets import SecretStore, needs_secret
from .views import AppInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Removal:
    """What removing an app removed."""

    app_id: str
    name: str
    discarded: int  # batches it left undecided or undelivered, discarded with receipts
    secret_cleared: bool  # a secret of its vendor was in the keyring and is gone
    problem: str = ""  # why its secret could not be cleared (the app is removed all the same)


class Credentials:
    """An app's vendor secret: set, clear, and what removing the app does to it."""

    def __init__(self, broker: Broker, secrets: SecretStore) -> None:
        self.broker = broker
        self.secrets = secrets

    def app_needing_secret(self, app_id: str) -> AppInfo:
        """The app, if its vendor takes a secret; :class:`InputError` if it takes none
        (so a shell can say so before asking for one)."""
        app = self.broker.app(app_id)
        if not needs_secret(app.manifest.auth):
            raise InputError(f"{app.name}'s vendor needs no credentials (auth = {app.manifest.auth}); nothing to store")
        return app

    def set(self, app_id: str, secret: str) -> int:
        """Store ``secret`` in the keyring for ``app_id``, then make its deliveries that
        waited for credentials due now (the forwarder wakes). Returns how many."""
        app = self.app_needing_secret(app_id)
        self.secrets.set(app.app_id, secret)
        return self.broker.deliveries.credentials_changed(app.app_id)

    def clear(self, app_id: str) -> bool:
        """Remove ``app_id``'s secret from the keyring; whether there was one. Its
        approved batches wait until a secret is set again."""
        app = self.broker.app(app_id)
        return self.secrets.clear(app.app_id)

    def remove_app(self, app_id: str) -> Removal:
        """Forget the app (:meth:`Broker.remove_app`), then clear its secret from the
        keyring, whatever the last look at the keyring said: it may have been locked
        then. With no OS keyring at all there is nothing to clear; a keyring that refuses
        is reported in :attr:`Removal.problem`, the app being gone already."""
        app = self.broker.app(app_id)
        # Any version that needed a secret counts, not only the current one: a secret left
        # behind would go to the next app registering under this id. An app that never
        # needed one never touches the keyring (it may have none, or prompt to unlock).
        ever_needed = any(needs_secret(manifest.auth) for manifest in self.broker.manifest_versions(app.app_id))
        discarded = self.broker.remove_app(app.app_id)
        cleared, problem = False, ""
        if ever_needed:
            try:
                cleared = self.secrets.clear(app.app_id)
            except CredentialsError as exc:
                if self.secrets.available():
                    problem = f"{app.name} was removed, but its credentials could not be cleared: {exc.message}"
                    log.warning("credentials: %s", problem)
        return Removal(app.app_id, app.name, discarded, cleared, problem)
