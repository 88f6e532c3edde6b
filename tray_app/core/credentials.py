"""Vendor credentials of registered apps: the keyring and the broker together.

Two rules that every shell (the Settings window, the CLI) follows, written once:

* storing an app's secret wakes its deliveries that waited for credentials;
* removing an app clears its secret from the keyring, so a secret left behind is never
  sent for the next app that registers under the same id;
* connecting an app (:meth:`Credentials.connect`) prints the lines that point its SDK at
  the tray with a working token: the database keeps only the token's hash, so the token
  itself is kept in the keyring to be printed again, and a new one is issued only when
  none kept there works.

The secrets themselves are only ever in the OS keyring
(:class:`~tray_app.core.platform.secrets.SecretStore`); transactions start only in the
broker.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from secrets import token_urlsafe
from typing import Any

from .broker import Broker, hash_token
from .errors import CredentialsError, InputError
from .platform.secrets import SecretStore, needs_secret
from .rules.sdk_environment import SdkEnvironment, sdk_environment, sdk_kind
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
    token_cleared: bool = False  # the token connect kept for it in the keyring is gone


@dataclass(frozen=True)
class Connection:
    """What :meth:`Credentials.connect` gives: the environment that points the app's SDK at
    the tray, with a token that works, and what it took to get one."""

    app_id: str
    name: str
    environment: SdkEnvironment
    token: str = field(repr=False)
    # A new token was issued: the one the app was given before (by register or an earlier
    # connect) stops working. False: the token kept in the keyring still works.
    replaced: bool
    # The token is kept in the OS keyring, so the next connect prints it again. False: no
    # OS keyring can be used (``no_keyring`` says why) and it is shown only this once.
    kept: bool
    no_keyring: str = ""

    def lines(self) -> tuple[str, ...]:
        return self.environment.lines()

    def text(self) -> str:
        return self.environment.text()

    def to_obj(self) -> dict[str, Any]:
        """The shape of ``connect --json``: the variables, name → value."""
        return self.environment.to_obj()


class Credentials:
    """An app's vendor secret: set, clear, and what removing the app does to it."""

    def __init__(self, broker: Broker, secrets: SecretStore) -> None:
        self.broker = broker
        self.secrets = secrets
        # Names this home in the keyring (the tokens of two homes' apps of one id differ).
        self.home = hashlib.sha256(str(broker.store.path.resolve()).encode("utf-8")).hexdigest()[:16]

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
        # Likewise a token connect kept: only an app that ever had an [otlp] table has one.
        ever_connected = any(manifest.otlp_service_names for manifest in self.broker.manifest_versions(app.app_id))
        discarded = self.broker.remove_app(app.app_id)
        cleared, token_cleared, problem = False, False, ""
        if ever_needed:
            try:
                cleared = self.secrets.clear(app.app_id)
            except CredentialsError as exc:
                if self.secrets.available():
                    problem = f"{app.name} was removed, but its credentials could not be cleared: {exc.message}"
                    log.warning("credentials: %s", problem)
        if ever_connected:
            try:
                token_cleared = self.secrets.clear_app_token(app.app_id, self.home)
            except CredentialsError as exc:
                if self.secrets.available() and not problem:
                    problem = f"{app.name} was removed, but its token could not be cleared: {exc.message}"
                    log.warning("credentials: %s", problem)
        return Removal(app.app_id, app.name, discarded, cleared, problem, token_cleared)

    def connect(self, app_id: str, *, otlp_url: str) -> Connection:
        """The lines that point ``app_id``'s SDK at the tray's receiver at ``otlp_url``.

        The token kept in the keyring is used again if it is still the app's token, so
        connecting twice gives the same lines and the app keeps working. Otherwise a new
        256-bit token is issued; it replaces the app's token (as ``register FILE`` at the
        CLI does) and is kept in the keyring first, so a keyring that refuses (locked)
        changes nothing. With no OS keyring at all the new token is shown only this once:
        there is no plaintext fallback. An app whose manifest has no table for an SDK
        (``[otlp]``) is an :class:`InputError`, before anything is touched. Touches the
        keyring and the database: call it off a UI thread."""
        app = self.broker.app(app_id)
        sdk_kind(app.manifest)
        keyring = self.secrets.available()
        if keyring:
            kept = self.secrets.app_token(app.app_id, self.home)
            if kept is not None and self.broker.token_matches(app.app_id, hash_token(kept)):
                return self._connection(app, otlp_url, kept, replaced=False, kept=True)
        token = token_urlsafe(32)
        if keyring:
            self.secrets.set_app_token(app.app_id, self.home, token)
        self.broker.replace_token(app.app_id, token)
        log.info("credentials: issued a new token for %s", app.app_id)
        return self._connection(app, otlp_url, token, replaced=True, kept=keyring)

    def _connection(self, app: AppInfo, otlp_url: str, token: str, *, replaced: bool, kept: bool) -> Connection:
        environment = sdk_environment(app.manifest, otlp_url=otlp_url, token=token)
        why = "" if kept else f"No OS keyring can keep it: {self.secrets.why_unavailable()}"
        return Connection(app.app_id, app.name, environment, token, replaced, kept, why)
