"""Vendor secrets in the OS keyring, and nowhere else.

A manifest's ``auth`` says whether its vendor needs a secret: ``none``, ``bearer``
(sent as ``Authorization: Bearer <secret>``) or ``header:<Name>`` (sent as
``<Name>: <secret>``). The secret lives in the OS keyring under the service
``telemetry-tray`` with the app's ``app_id`` as the user name, and only there:
never in the database, a log, or any file of ours.

:class:`SecretStore` wraps the ``keyring`` package. It imports ``keyring`` and picks a
backend only on first use, behind a lock. When no OS keyring can be had (a headless
Linux machine without a Secret Service, a keyring configured off, or a file-based
backend such as those of ``keyrings.alt``) it refuses: :meth:`SecretStore.available`
is False, :meth:`SecretStore.status` says why and what to do, and reading or storing
raises :class:`~tray_app.core.errors.CredentialsError`. There is no plaintext
fallback. Every error of a backend becomes that one exception, with a message fit to
show a person that never contains the secret.

Vendors whose ``auth`` is ``none`` never touch the keyring at all (see
:meth:`SecretStore.headers_for`), so they keep working without one; the others wait
for credentials.

The same keyring keeps the tokens ``telemetry-tray connect`` issues to apps (the database
holds only their hashes, so it could never print one again): under a service of their own,
``telemetry-tray.app-token``, with the user name ``<app_id>@<home>``, so an entry never meets
a vendor secret, and two homes with an app of the same id never overwrite each other's.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ..errors import CredentialsError, InputError, Remedy
from ..rules.manifest import Auth, AuthKind, parse_auth
from ..rules.preview_text import SECRET_CONTROL, has_control

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = [
    "APP_TOKEN_SERVICE",
    "MAX_SECRET_CHARS",
    "SERVICE",
    "SecretStore",
    "auth_headers",
    "check_secret",
    "needs_secret",
]

SERVICE: Final = "telemetry-tray"
APP_TOKEN_SERVICE: Final = SERVICE + ".app-token"  # the suffix on any SecretStore's service
MAX_SECRET_CHARS: Final = 8192

log = logging.getLogger(__name__)

# The backends that keep secrets in the operating system's own keyring. Detection
# picks only these; a backend named by the person's keyring configuration, or given
# to SecretStore, may be another one as long as it is not refused below.
_OS_KEYRINGS: Final = {
    "keyring.backends.SecretService.Keyring": "Secret Service",
    "keyring.backends.libsecret.Keyring": "Secret Service (libsecret)",
    "keyring.backends.kwallet.DBusKeyring": "KDE Wallet",
    "keyring.backends.kwallet.DBusKeyringKWallet4": "KDE Wallet 4",
    "keyring.backends.macOS.Keyring": "macOS Keychain",
    "keyring.backends.Windows.WinVaultKeyring": "Windows Credential Manager",
}
# Packages whose backends keep secrets in files (plaintext or encrypted with a key
# kept nearby): never used, whoever asks for them.
_FILE_BACKEND_PACKAGES: Final = ("keyrings.alt", "keyrings.cryptfile")
_CHAINER: Final = "keyring.backends.chainer.ChainerBackend"


class SecretStore:
    """The vendor secrets of registered apps, kept in the OS keyring.

    ``backend`` replaces detection (tests); it is still refused if it is one of the
    insecure or absent kinds. ``service`` is the keyring service name.
    """

    def __init__(self, backend: KeyringBackend | None = None, *, service: str = SERVICE) -> None:
        self._service = service
        self._token_service = service + APP_TOKEN_SERVICE.removeprefix(SERVICE)
        self._given = backend
        self._lock = threading.RLock()
        self._chosen = False
        self._backend: KeyringBackend | None = None
        self._label = ""
        self._why_not = ""

    def __repr__(self) -> str:
        with self._lock:
            chosen = self._label if self._backend is not None else ("none" if self._chosen else "not chosen yet")
        return f"SecretStore(service={self._service!r}, backend={chosen!r})"

    # -- what the keyring is ------------------------------------------------------

    def available(self) -> bool:
        """Whether an OS keyring can be used. Picks the backend on first call; never raises."""
        return self._choose() is not None

    def status(self) -> str:
        """One line for a person: which keyring keeps the secrets, or why there is none."""
        if self._choose() is not None:
            return f"Vendor secrets are kept in the OS keyring ({self._label})."
        return (
            f"No OS keyring is available: {self.why_unavailable()} "
            "Vendors that need no credentials keep working; the others wait for credentials."
        )

    def why_unavailable(self) -> str:
        """Why no OS keyring can be used, and what to do; "" when one can."""
        return "" if self._choose() is not None else f"{self._why_not}. {_advice()}"

    # -- the secrets --------------------------------------------------------------

    def get(self, app_id: str) -> str | None:
        """The secret stored for ``app_id``, or None when there is none."""
        app_id = _checked_app_id(app_id)
        return self._read(self._service, app_id, f"read the secret for {app_id}")

    def set(self, app_id: str, secret: str) -> None:
        """Store ``secret`` for ``app_id``, replacing any earlier one.

        A single trailing newline is dropped (``echo TOKEN | telemetry-tray credentials
        set APP``); any other unfit secret raises :class:`InputError`.
        """
        app_id = _checked_app_id(app_id)
        secret = check_secret(secret)
        self._write(self._service, app_id, secret, f"store the secret for {app_id}")
        log.info("credentials: stored a secret for %s in %s", app_id, self._label)

    def clear(self, app_id: str) -> bool:
        """Remove the secret of ``app_id``; whether there was one."""
        app_id = _checked_app_id(app_id)
        return self._remove(self._service, app_id, f"remove the secret for {app_id}")

    def has(self, app_id: str) -> bool:
        """Whether a secret is stored for ``app_id``."""
        return self.get(app_id) is not None

    def headers_for(self, app_id: str, auth: Auth | str) -> dict[str, str]:
        """The request headers that carry ``app_id``'s credentials for its manifest ``auth``.

        ``auth = "none"`` gives ``{}`` without touching the keyring, so such vendors keep
        working with no keyring at all. Otherwise a missing secret or an unusable keyring
        raises :class:`CredentialsError`: hold the batch as waiting for credentials.
        """
        if not needs_secret(auth):
            return {}
        return auth_headers(auth, self.get(app_id), app_id=app_id)

    # -- the apps' own tokens (telemetry-tray connect) -------------------------------

    def app_token(self, app_id: str, home: str) -> str | None:
        """The token kept for ``app_id`` of the home ``home`` names, or None."""
        app_id = _checked_app_id(app_id)
        return self._read(self._token_service, _token_user(app_id, home), f"read the token of {app_id}")

    def set_app_token(self, app_id: str, home: str, token: str) -> None:
        """Keep ``token`` for ``app_id`` of ``home``, replacing any earlier one."""
        app_id = _checked_app_id(app_id)
        token = check_secret(token)
        self._write(self._token_service, _token_user(app_id, home), token, f"store the token of {app_id}")
        log.info("credentials: kept the token of %s in %s", app_id, self._label)

    def clear_app_token(self, app_id: str, home: str) -> bool:
        """Forget the token kept for ``app_id`` of ``home``; whether there was one."""
        app_id = _checked_app_id(app_id)
        return self._remove(self._token_service, _token_user(app_id, home), f"remove the token of {app_id}")

    # -- inside -------------------------------------------------------------------

    def _read(self, service: str, user: str, doing: str) -> str | None:
        backend = self._usable(doing)
        with self._lock:
            try:
                return backend.get_password(service, user)
            except Exception as exc:
                raise _mapped(exc, doing) from exc

    def _write(self, service: str, user: str, secret: str, doing: str) -> None:
        backend = self._usable(doing)
        with self._lock:
            try:
                backend.set_password(service, user, secret)
            except Exception as exc:
                raise _mapped(exc, doing, secret) from _cause(exc, secret)

    def _remove(self, service: str, user: str, doing: str) -> bool:
        backend = self._usable(doing)
        with self._lock:
            try:
                if backend.get_password(service, user) is None:
                    return False
                # A keyring may hold more than one matching entry (written by another
                # tool); clear means none is left.
                for _ in range(8):
                    self._delete(backend, service, user)
                    if backend.get_password(service, user) is None:
                        log.info("credentials: %s from %s: done", doing, self._label)
                        return True
            except Exception as exc:
                raise _mapped(exc, doing) from exc
        raise CredentialsError(f"Could not {doing}: the OS keyring still holds it after removing it several times.")

    def _choose(self) -> KeyringBackend | None:
        with self._lock:
            if not self._chosen:
                if self._given is not None:
                    backend, why_not = _accept(self._given, "the keyring given")
                else:
                    backend, why_not = _detect()
                self._backend, self._why_not = backend, why_not
                self._label = _label(backend) if backend is not None else ""
                self._chosen = True
                if backend is not None:
                    log.info("credentials: using the OS keyring %s", self._label)
                else:
                    log.info("credentials: no OS keyring: %s", why_not)
            return self._backend

    def _usable(self, doing: str) -> KeyringBackend:
        backend = self._choose()
        if backend is None:
            raise CredentialsError(
                f"Could not {doing}: no OS keyring is available ({self._why_not}), and Telemetry Tray keeps "
                f"vendor secrets nowhere else. {_advice()} Vendors that need no credentials keep working; "
                "the others wait for credentials."
            )
        return backend

    def _delete(self, backend: KeyringBackend, service: str, user: str) -> None:
        from keyring.errors import PasswordDeleteError

        try:
            backend.delete_password(service, user)
        except PasswordDeleteError:
            # Most backends say so when nothing matches: gone meanwhile is fine.
            if backend.get_password(service, user) is not None:
                raise


# -- secrets and headers ------------------------------------------------------------


def check_secret(secret: str) -> str:
    """``secret`` as it will be stored: one trailing newline dropped, then checked.

    A secret travels in an HTTP header, so it must be printable ASCII without
    surrounding spaces, non-empty, and at most :data:`MAX_SECRET_CHARS` long. The
    messages never repeat the secret.
    """
    if not isinstance(secret, str):
        raise InputError("The secret must be text.", title="Invalid secret")
    if secret.endswith("\r\n"):
        secret = secret[:-2]
    elif secret.endswith("\n"):
        secret = secret[:-1]
    problem = _secret_problem(secret)
    if problem:
        raise InputError(f"The secret {problem}.", title="Invalid secret")
    return secret


def needs_secret(auth: Auth | str) -> bool:
    """Whether a manifest ``auth`` needs a secret from the keyring."""
    return _parsed(auth).needs_secret


def auth_headers(auth: Auth | str, secret: str | None, *, app_id: str | None = None) -> dict[str, str]:
    """The request headers for a manifest ``auth`` and its vendor secret.

    ``"none"`` → ``{}``; ``"bearer"`` → ``{"Authorization": "Bearer <secret>"}``;
    ``"header:<Name>"`` → ``{"<Name>": "<secret>"}``. A secret that is needed but
    missing (None) or unfit for a header raises :class:`CredentialsError`, naming
    ``app_id`` when given.
    """
    parsed = _parsed(auth)
    if parsed.kind == AuthKind.NONE:
        return {}
    how = Remedy.SET_CREDENTIALS
    if secret is None:
        whose = f"{app_id}'s vendor" if app_id else "This vendor"
        raise CredentialsError(
            f"{whose} needs a secret (auth = {parsed}) and none is stored in the OS keyring.", remedy=how, app_id=app_id
        )
    problem = _secret_problem(secret)
    if problem:
        whose = f"for {app_id} " if app_id else ""
        raise CredentialsError(f"The stored secret {whose}cannot be sent: it {problem}.", remedy=how, app_id=app_id)
    if parsed.kind == AuthKind.BEARER:
        return {"Authorization": f"Bearer {secret}"}
    assert parsed.header is not None
    return {parsed.header: secret}


def _parsed(auth: Auth | str) -> Auth:
    """A manifest ``auth``, parsed by the manifest's own grammar if it is still text."""
    return auth if isinstance(auth, Auth) else parse_auth(auth)


def _secret_problem(secret: str) -> str:
    """What is wrong with a secret, in words that do not repeat it; '' when fine."""
    if not secret:
        return "is empty"
    if len(secret) > MAX_SECRET_CHARS:
        return f"is {len(secret)} characters long; at most {MAX_SECRET_CHARS} are accepted"
    for position, char in enumerate(secret, start=1):
        if unicodedata.category(char) in SECRET_CONTROL:
            return (
                f"contains a control character (U+{ord(char):04X}) at position {position}; "
                "give only the secret itself, on one line"
            )
        if not char.isascii():
            return (
                f"contains a character that cannot be sent in an HTTP header (U+{ord(char):04X}) at "
                f"position {position}; vendor secrets are plain ASCII"
            )
    if secret != secret.strip(" "):
        return "starts or ends with a space, which HTTP would drop; give it without the spaces"
    return ""


def _checked_app_id(app_id: str) -> str:
    if not isinstance(app_id, str) or not app_id or has_control(app_id):
        raise InputError(f"{app_id!r} is not an app id.", title="Invalid app id")
    return app_id


def _token_user(app_id: str, home: str) -> str:
    # An app id has no "@" (it is reverse-DNS), so the two parts never run together.
    if not home or not home.isascii() or not home.isalnum():
        raise InputError(f"{home!r} does not name a home.", title="Invalid home")
    return f"{app_id}@{home}"


# -- backends -----------------------------------------------------------------------


def _qualname(backend: KeyringBackend) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _name(backend: KeyringBackend) -> str:
    try:
        return str(type(backend).name)
    except Exception:
        return type(backend).__qualname__


def _label(backend: KeyringBackend) -> str:
    return _OS_KEYRINGS.get(_qualname(backend)) or _name(backend)


def _refusal(backend: KeyringBackend) -> str:
    """Why ``backend`` may not hold vendor secrets; '' when it may."""
    module = type(backend).__module__
    if module == "keyring.backends.fail":
        return "no keyring service was found"
    if module == "keyring.backends.null":
        return "the keyring is switched off (keyring's null backend is configured)"
    if module.startswith(_FILE_BACKEND_PACKAGES):
        return f"the configured keyring ({_name(backend)}) keeps secrets in a file, not in the OS keyring"
    try:
        priority = float(type(backend).priority)
    except Exception as exc:
        return f"{_name(backend)} cannot be used here ({_detail(exc)})"
    if priority < 1:
        return f"{_name(backend)} is not a secure keyring"
    return ""


def _accept(backend: KeyringBackend, origin: str) -> tuple[KeyringBackend | None, str]:
    """``backend`` if it may hold secrets; a chainer is replaced by its best usable member."""
    if _qualname(backend) == _CHAINER:
        try:
            chainer: Any = type(backend)  # keyring.backends.chainer.ChainerBackend
            members: list[KeyringBackend] = list(chainer.backends)
        except Exception as exc:
            return None, f"{origin} cannot be used ({_detail(exc)})"
        return _best(members, lambda member: not _refusal(member), "no keyring service was found")
    why_not = _refusal(backend)
    return (None, why_not) if why_not else (backend, "")


def _best(
    candidates: list[KeyringBackend], allowed: Callable[[KeyringBackend], bool], none_found: str
) -> tuple[KeyringBackend | None, str]:
    ranked: list[tuple[float, KeyringBackend]] = []
    for backend in candidates:
        if _qualname(backend) == _CHAINER or not allowed(backend) or _refusal(backend):
            continue
        try:
            ranked.append((float(type(backend).priority), backend))
        except Exception:  # noqa: S112 - became unusable since it was listed
            continue
    if not ranked:
        return None, none_found
    return max(ranked, key=lambda pair: pair[0])[1], ""


def _detect() -> tuple[KeyringBackend | None, str]:
    """The keyring the person configured for ``keyring``, else the best OS keyring found."""
    try:
        import keyring.backend
        import keyring.core
    except Exception as exc:  # an installation problem, not the person's
        return None, f"the keyring package cannot be loaded ({_detail(exc)})"
    named = os.environ.get("PYTHON_KEYRING_BACKEND", "")
    try:
        configured = keyring.core.load_env()
    except Exception as exc:
        return None, f"the keyring named by PYTHON_KEYRING_BACKEND ({named}) cannot be used ({_detail(exc)})"
    if configured is not None:
        return _accept(configured, f"the keyring named by PYTHON_KEYRING_BACKEND ({named})")
    try:
        configured = keyring.core.load_config()
    except Exception as exc:
        return None, f"the keyring set in keyring's keyringrc.cfg cannot be used ({_detail(exc)})"
    if configured is not None:
        return _accept(configured, "the keyring set in keyring's keyringrc.cfg")
    try:
        found: list[KeyringBackend] = list(keyring.backend.get_all_keyring())
    except Exception as exc:
        return None, f"looking for a keyring failed ({_detail(exc)})"
    return _best(found, lambda backend: _qualname(backend) in _OS_KEYRINGS, "no keyring service was found")


def _advice() -> str:
    if sys.platform == "darwin":
        return "The macOS Keychain should always be there: check that Telemetry Tray may use it."
    if sys.platform == "win32":
        return "Windows Credential Manager should always be there: check that your account may use it."
    return (
        "Install and start a Secret Service such as GNOME Keyring (gnome-keyring) or KDE Wallet (kwalletmanager); "
        "on a desktop it starts when you log in; without a desktop it needs a D-Bus session."
    )


# -- errors -------------------------------------------------------------------------


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _mapped(exc: Exception, doing: str, secret: str | None = None) -> CredentialsError:
    """A backend error as the one exception, fit for a person, without the secret."""
    names = _class_names(exc)
    module = type(exc).__module__
    detail = _detail(exc, secret)
    if names & {"KeyringLocked", "LockedException"}:
        reason = (
            "the keyring is locked. Unlock it (it normally unlocks when you log in; otherwise use your desktop's "
            "passwords and keys tool) and try again"
        )
    elif "PromptDismissedException" in names:
        reason = "the request to unlock the keyring was dismissed. Try again and accept it"
    elif names & {"NoKeyringError", "SecretServiceNotAvailableException"}:
        reason = f"no OS keyring answers ({detail}). {_advice()}"
    elif "InitError" in names:
        reason = f"the OS keyring could not be opened ({detail})"
    elif names & {"PasswordSetError", "PasswordDeleteError"}:
        reason = f"the OS keyring refused ({detail})"
    elif isinstance(exc, NotImplementedError):
        reason = "the keyring in use cannot do that"
    elif module.startswith(("secretstorage", "jeepney", "dbus")):
        reason = f"the keyring service answered with an error ({detail})"
    elif isinstance(exc, OSError | TimeoutError):
        reason = f"the OS keyring cannot be reached ({detail})"
    else:
        reason = f"the keyring failed ({detail})"
    log.info("credentials: could not %s: %s", doing, type(exc).__name__)
    return CredentialsError(f"Could not {doing}: {reason}.")


def _detail(exc: BaseException, secret: str | None = None) -> str:
    """An exception's own words, short, with the secret (should a backend echo it) cut out."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if secret and secret in text:
        text = text.replace(secret, "[secret]")
    if len(text) > 200:
        text = text[:199] + "…"
    return text.rstrip(".")


def _cause(exc: Exception, secret: str) -> Exception | None:
    """``exc`` to chain, unless its text shows the secret (a traceback would print it)."""
    if secret in str(exc) or secret in repr(exc.args):
        return None
    return exc
