"""Vendor secrets: the SecretStore wrapper on an in-memory keyring, then the real OS keyring.

The in-memory keyring (tests/support/keyrings.py) and its kin below exist only to test our
own wrapper. The tests marked
``real keyring`` use the OS keyring that detection finds (in CI: gnome-keyring over the
Secret Service in a private D-Bus session, see tests/support/keyring_session.py); without one
they skip, and in CI a skip is a failure (conftest.py).
"""

from __future__ import annotations

import logging
import os
import secrets as pysecrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from keyring import errors as kerrors
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null

from tests.support.keyring_session import real_keyring
from tests.support.keyrings import MemoryKeyring
from tray_app.cli import explain
from tray_app.core.errors import CredentialsError, InputError, ManifestError, Remedy, TrayError
from tray_app.core.platform import secrets as secrets_module
from tray_app.core.platform.secrets import (
    MAX_SECRET_CHARS,
    SERVICE,
    SecretStore,
    auth_headers,
    check_secret,
    needs_secret,
)

ROOT = Path(__file__).resolve().parents[2]
APP = "org.example.photoedit"
SECRET = "tok-3f9a1c7e5b2d4f60-secret"


class BrokenKeyring(MemoryKeyring):
    """Every call raises the exception it was given."""

    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.exc = exc

    def get_password(self, service: str, username: str) -> str | None:
        raise self.exc

    def set_password(self, service: str, username: str, password: str) -> None:
        raise self.exc

    def delete_password(self, service: str, username: str) -> None:
        raise self.exc


class PlainFileKeyring(MemoryKeyring):
    """Stands for a keyrings.alt backend, which keeps secrets in a file."""

    __module__ = "keyrings.alt.file"


class WeakKeyring(MemoryKeyring):
    """A backend keyring itself does not recommend (priority below 1)."""

    priority = 0.5


def _foreign(module: str, name: str) -> type[Exception]:
    """An exception class as secretstorage or jeepney would raise it."""
    return type(name, (Exception,), {"__module__": module})


@pytest.fixture(autouse=True)
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every place a file of ours, or of keyring's, could land: all under one directory.

    Also keeps a developer's own keyring configuration out of the tests.
    """
    world = tmp_path / "world"
    for name, sub in [
        ("HOME", "home"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_STATE_HOME", "state"),
        ("TELEMETRY_TRAY_HOME", "tray"),
    ]:
        monkeypatch.setenv(name, str(world / sub))
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    world.mkdir()
    return world


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def files_holding(root: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [path for path in files_under(root) if needle in path.read_bytes()]


def assert_secret_hidden(exc: BaseException, secret: str) -> None:
    assert isinstance(exc, CredentialsError | InputError)
    for text in (str(exc), repr(exc), exc.message, exc.title):
        assert secret not in text
    cause = exc.__cause__
    if cause is not None:
        assert secret not in str(cause) and secret not in repr(cause)


# -- the wrapper on an in-memory keyring -------------------------------------------


def test_round_trip() -> None:
    backend = MemoryKeyring()
    store = SecretStore(backend)
    assert store.available()
    assert store.get(APP) is None
    assert not store.has(APP)
    store.set(APP, SECRET)
    assert backend.items == {(SERVICE, APP): [SECRET]}  # service telemetry-tray, user = app_id
    assert store.get(APP) == SECRET
    assert store.has(APP)
    store.set(APP, "replaced")
    assert store.get(APP) == "replaced"
    assert store.clear(APP) is True
    assert store.get(APP) is None
    assert store.clear(APP) is False


def test_apps_do_not_share_secrets() -> None:
    store = SecretStore(MemoryKeyring())
    store.set(APP, "one")
    store.set("org.example.notes", "two")
    assert (store.get(APP), store.get("org.example.notes")) == ("one", "two")
    store.clear(APP)
    assert store.get("org.example.notes") == "two"


def test_clear_removes_every_matching_entry() -> None:
    backend = MemoryKeyring()
    backend.items[(SERVICE, APP)] = ["first", "second", "third"]  # as another tool could leave them
    assert SecretStore(backend).clear(APP) is True
    assert backend.items == {}


def test_clear_that_the_keyring_refuses_is_an_error() -> None:
    class Stubborn(MemoryKeyring):
        def delete_password(self, service: str, username: str) -> None:
            raise kerrors.PasswordDeleteError("permission denied")

    backend = Stubborn()
    backend.items[(SERVICE, APP)] = [SECRET]
    with pytest.raises(CredentialsError, match=r"remove the secret for org\.example\.photoedit.*permission denied"):
        SecretStore(backend).clear(APP)


def test_status_names_the_keyring() -> None:
    store = SecretStore(MemoryKeyring())
    assert store.status() == "Vendor secrets are kept in the OS keyring (keyrings MemoryKeyring)."
    assert "\n" not in store.status()


def test_nothing_happens_before_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    detections: list[int] = []

    def detect() -> tuple[KeyringBackend | None, str]:
        detections.append(1)
        return MemoryKeyring(), ""

    monkeypatch.setattr(secrets_module, "_detect", detect)
    store = SecretStore()
    assert repr(store) == "SecretStore(service='telemetry-tray', backend='not chosen yet')"
    assert store.headers_for(APP, "none") == {}
    assert detections == []
    assert store.available()
    assert store.get(APP) is None
    assert store.status().startswith("Vendor secrets are kept in the OS keyring")
    assert detections == [1]


def test_the_backend_is_chosen_once_under_concurrent_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    detections: list[int] = []

    def slow_detect() -> tuple[KeyringBackend | None, str]:
        detections.append(1)
        time.sleep(0.05)
        return MemoryKeyring(), ""

    monkeypatch.setattr(secrets_module, "_detect", slow_detect)
    store = SecretStore()
    barrier = threading.Barrier(8)
    results: list[str | None] = []

    def use() -> None:
        barrier.wait()
        results.append(store.get(APP))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [None] * 8
    assert detections == [1]


def test_importing_the_module_does_not_import_keyring() -> None:
    code = (
        "import sys\n"
        "from tray_app.core.platform.secrets import SecretStore\n"
        "store = SecretStore()\n"
        "assert store.headers_for('org.example.a', 'none') == {}\n"
        "assert 'keyring' not in sys.modules, 'keyring imported before first use'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# -- secrets that cannot be stored -------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("tok", "tok"),
        ("tok\n", "tok"),  # echo TOKEN | telemetry-tray credentials set APP
        ("tok\r\n", "tok"),
        ("a b=c/d+e", "a b=c/d+e"),
        ("x" * MAX_SECRET_CHARS, "x" * MAX_SECRET_CHARS),
    ],
)
def test_secret_as_stored(given: str, stored: str) -> None:
    assert check_secret(given) == stored
    backend = MemoryKeyring()
    SecretStore(backend).set(APP, given)
    assert backend.items[(SERVICE, APP)] == [stored]


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("", "is empty"),
        ("\n", "is empty"),
        ("tok\n\n", r"control character \(U\+000A\) at position 4"),
        ("to\tk", r"control character \(U\+0009\) at position 3"),
        ("tok\x00en", r"control character \(U\+0000\)"),
        ("tok\x7fen", r"control character \(U\+007F\)"),
        ("tok\u200ben", r"control character \(U\+200B\)"),  # zero-width space, invisible when pasted
        ("tok\u2028en", r"control character \(U\+2028\)"),
        ("tök-en", r"cannot be sent in an HTTP header \(U\+00F6\) at position 2"),
        (" token", "starts or ends with a space"),
        ("token ", "starts or ends with a space"),
        ("x" * (MAX_SECRET_CHARS + 1), f"is {MAX_SECRET_CHARS + 1} characters long; at most {MAX_SECRET_CHARS}"),
    ],
)
def test_unfit_secret_is_refused_before_the_keyring_is_touched(secret: str, problem: str) -> None:
    backend = MemoryKeyring()
    with pytest.raises(InputError, match=problem) as caught:
        SecretStore(backend).set(APP, secret)
    assert caught.value.title == "Invalid secret"
    assert backend.calls == []
    if secret.strip():
        assert_secret_hidden(caught.value, secret)


def test_unfit_secret_is_input_error_even_without_a_keyring() -> None:
    with pytest.raises(InputError):
        SecretStore(fail.Keyring()).set(APP, "")


@pytest.mark.parametrize("app_id", ["", "org.example\n", "org\x00x"])
def test_bad_app_id(app_id: str) -> None:
    backend = MemoryKeyring()
    with pytest.raises(InputError, match="is not an app id"):
        SecretStore(backend).get(app_id)
    assert backend.calls == []


# -- no usable keyring: a clear error, never a fallback ----------------------------


UNUSABLE = {
    "fail (no keyring found)": (fail.Keyring, "no keyring service was found"),
    "null (keyring switched off)": (null.Keyring, "switched off"),
    "keyrings.alt file": (PlainFileKeyring, r"keeps secrets in a file, not in the OS keyring"),
    "not recommended": (WeakKeyring, "is not a secure keyring"),
}


@pytest.mark.parametrize("kind", UNUSABLE)
def test_unusable_backend_is_refused(kind: str, world: Path) -> None:
    backend_class, reason = UNUSABLE[kind]
    backend = backend_class()
    store = SecretStore(backend)
    assert not store.available()
    status = store.status()
    assert status.startswith("No OS keyring is available: ")
    assert reason in status, status
    assert "Vendors that need no credentials keep working" in status
    assert "\n" not in status
    for attempt in (lambda: store.set(APP, SECRET), lambda: store.get(APP), lambda: store.clear(APP)):
        with pytest.raises(CredentialsError, match="no OS keyring is available") as caught:
            attempt()
        assert isinstance(caught.value, TrayError)
        assert caught.value.title == "Vendor credentials"
        assert_secret_hidden(caught.value, SECRET)
    if isinstance(backend, MemoryKeyring):
        assert backend.items == {} and backend.calls == []
    # No plaintext fallback: nothing at all was written, in our home or anywhere else.
    assert files_under(world) == []
    # Vendors that need no secret keep working.
    assert store.headers_for(APP, "none") == {}
    with pytest.raises(CredentialsError):
        store.headers_for(APP, "bearer")


def test_the_refusal_says_what_to_do() -> None:
    store = SecretStore(fail.Keyring())
    with pytest.raises(CredentialsError) as caught:
        store.set(APP, SECRET)
    message = caught.value.message
    assert message.startswith("Could not store the secret for org.example.photoedit: no OS keyring is available")
    assert "keeps vendor secrets nowhere else" in message
    if sys.platform.startswith("linux"):
        assert "Secret Service" in message and "gnome-keyring" in message and "KDE Wallet" in message


def test_a_chainer_uses_its_best_usable_member(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = MemoryKeyring()
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [PlainFileKeyring(), memory, WeakKeyring()])
    store = SecretStore(chainer.ChainerBackend())
    store.set(APP, SECRET)
    assert memory.items == {(SERVICE, APP): [SECRET]}


def test_a_chainer_of_nothing_usable_is_refused(monkeypatch: pytest.MonkeyPatch, world: Path) -> None:
    plain = PlainFileKeyring()
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [plain, null.Keyring()])
    store = SecretStore(chainer.ChainerBackend())
    assert not store.available()
    with pytest.raises(CredentialsError):
        store.set(APP, SECRET)
    assert plain.calls == []
    assert files_under(world) == []


@pytest.mark.parametrize(
    ("configured", "reason"),
    [
        ("keyring.backends.null.Keyring", "switched off"),
        ("keyring.backends.fail.Keyring", "no keyring service was found"),
        ("tests.core.test_secrets.PlainFileKeyring", "keeps secrets in a file"),
        ("no.such.Keyring", "the keyring named by PYTHON_KEYRING_BACKEND (no.such.Keyring) cannot be used"),
    ],
)
def test_a_configured_unusable_keyring_is_refused_not_replaced(
    configured: str, reason: str, monkeypatch: pytest.MonkeyPatch, world: Path
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", configured)
    store = SecretStore()
    assert not store.available()
    assert reason in store.status()
    with pytest.raises(CredentialsError):
        store.set(APP, SECRET)
    assert files_under(world) == []


def test_a_keyring_config_file_naming_a_file_backend_is_refused(world: Path) -> None:
    config = world / "config" / "python_keyring" / "keyringrc.cfg"
    config.parent.mkdir(parents=True)
    config.write_text("[backend]\ndefault-keyring = tests.core.test_secrets.PlainFileKeyring\n")
    store = SecretStore()
    assert not store.available()
    assert "keeps secrets in a file" in store.status()
    with pytest.raises(CredentialsError):
        store.set(APP, SECRET)
    assert files_under(world) == [config]


def test_a_configured_usable_keyring_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.support.keyrings.MemoryKeyring")
    store = SecretStore()
    assert store.available()
    assert "MemoryKeyring" in store.status()


# -- errors of a keyring, mapped -----------------------------------------------------


BACKEND_ERRORS = [
    (kerrors.KeyringLocked("Failed to unlock the collection!"), "the keyring is locked. Unlock it"),
    (_foreign("secretstorage.exceptions", "LockedException")("locked"), "the keyring is locked"),
    (_foreign("secretstorage.exceptions", "PromptDismissedException")("no"), "unlock the keyring was dismissed"),
    (_foreign("secretstorage.exceptions", "SecretServiceNotAvailableException")("gone"), "no OS keyring answers"),
    (kerrors.NoKeyringError("none"), "no OS keyring answers"),
    (kerrors.InitError("Failed to create the collection"), "could not be opened"),
    (kerrors.PasswordSetError("quota"), r"the OS keyring refused \(quota\)"),
    (kerrors.PasswordDeleteError("denied"), r"the OS keyring refused \(denied\)"),
    (kerrors.KeyringError("odd"), r"the keyring failed \(odd\)"),
    (_foreign("jeepney.wrappers", "DBusErrorResponse")("org.freedesktop.DBus.Error.NoReply"), "answered with an error"),
    (ConnectionRefusedError(111, "Connection refused"), "cannot be reached"),
    (TimeoutError("timed out"), "cannot be reached"),
    (NotImplementedError(), "cannot do that"),
    (ValueError("strange"), r"the keyring failed \(strange\)"),
]


@pytest.mark.parametrize(("error", "says"), BACKEND_ERRORS, ids=[type(e).__name__ for e, _ in BACKEND_ERRORS])
@pytest.mark.parametrize("action", ["get", "set", "clear", "has", "headers_for"])
def test_backend_errors_become_one_exception(error: Exception, says: str, action: str) -> None:
    store = SecretStore(BrokenKeyring(error))
    calls = {
        "get": lambda: store.get(APP),
        "set": lambda: store.set(APP, SECRET),
        "clear": lambda: store.clear(APP),
        "has": lambda: store.has(APP),
        "headers_for": lambda: store.headers_for(APP, "bearer"),
    }
    with pytest.raises(CredentialsError, match=says) as caught:
        calls[action]()
    assert caught.value.title == "Vendor credentials"
    assert "org.example.photoedit" in caught.value.message
    assert_secret_hidden(caught.value, SECRET)


def test_a_backend_that_echoes_the_secret_does_not_leak_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    class Echoing(MemoryKeyring):
        def set_password(self, service: str, username: str, password: str) -> None:
            raise kerrors.PasswordSetError(f"cannot store {password!r} for {username}")

    with pytest.raises(CredentialsError, match=r"refused \(cannot store '\[secret\]' for org.example.photoedit\)") as c:
        SecretStore(Echoing()).set(APP, SECRET)
    assert c.value.__cause__ is None  # a traceback would have printed it
    assert_secret_hidden(c.value, SECRET)
    assert SECRET not in caplog.text


def test_no_log_line_carries_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = SecretStore(MemoryKeyring())
    store.available()
    store.set(APP, SECRET)
    assert store.get(APP) == SECRET
    assert store.headers_for(APP, "header:X-Api-Key") == {"X-Api-Key": SECRET}
    store.clear(APP)
    for error, _ in BACKEND_ERRORS:
        with pytest.raises(CredentialsError):
            SecretStore(BrokenKeyring(error)).set(APP, SECRET)
    with pytest.raises(CredentialsError):
        SecretStore(fail.Keyring()).set(APP, SECRET)
    assert caplog.records  # it does log what it does
    assert SECRET not in caplog.text
    assert SECRET not in repr(store)


# -- manifest auth → request headers -----------------------------------------------


def test_auth_headers() -> None:
    assert auth_headers("none", None) == {}
    assert auth_headers("none", SECRET) == {}
    assert auth_headers("bearer", SECRET) == {"Authorization": f"Bearer {SECRET}"}
    assert auth_headers("header:X-Api-Key", SECRET) == {"X-Api-Key": SECRET}
    assert (needs_secret("none"), needs_secret("bearer"), needs_secret("header:X-Api-Key")) == (False, True, True)


@pytest.mark.parametrize("auth", ["bearer", "header:X-Api-Key"])
def test_a_missing_secret_says_how_to_set_it(auth: str) -> None:
    with pytest.raises(CredentialsError, match="none is stored") as caught:
        auth_headers(auth, None, app_id=APP)
    # The core's words name no shell; the remedy is the CLI's to spell (as it always did).
    assert caught.value.message == (
        f"org.example.photoedit's vendor needs a secret (auth = {auth}) and none is stored in the OS keyring. "
        "Set the vendor's secret for this app."
    )
    assert (caught.value.remedy, caught.value.app_id) == (Remedy.SET_CREDENTIALS, APP)
    assert explain(caught.value) == (
        f"org.example.photoedit's vendor needs a secret (auth = {auth}) and none is stored in the OS keyring. "
        "Set it with: telemetry-tray credentials set org.example.photoedit (the secret is read from standard input)."
    )
    with pytest.raises(CredentialsError) as without_app:
        auth_headers(auth, None)
    assert "credentials set APP" in explain(without_app.value)
    with pytest.raises(CredentialsError) as from_store:
        SecretStore(MemoryKeyring()).headers_for(APP, auth)
    assert "credentials set org.example.photoedit" in explain(from_store.value)


@pytest.mark.parametrize("stored", ["tok\nX-Injected: 1", "tök", "", " tok"])
def test_a_stored_secret_unfit_for_a_header_is_not_sent(stored: str) -> None:
    with pytest.raises(CredentialsError, match="cannot be sent") as caught:
        auth_headers("bearer", stored, app_id=APP)
    if stored.strip():
        assert_secret_hidden(caught.value, stored)


@pytest.mark.parametrize("auth", ["basic", "Bearer", "header:", "header:Bad Name", "header:X\nY", ""])
def test_unknown_auth_is_a_manifest_error(auth: str) -> None:
    with pytest.raises(ManifestError, match="auth"):
        auth_headers(auth, SECRET)


def test_vendors_without_auth_never_touch_the_keyring() -> None:
    backend = BrokenKeyring(kerrors.KeyringLocked("locked"))
    store = SecretStore(backend)
    assert store.headers_for(APP, "none") == {}
    assert backend.calls == []


# -- the real OS keyring -----------------------------------------------------------


@pytest.fixture
def real_store() -> SecretStore:
    """The OS keyring that detection finds, and an app id no one else uses."""
    store = real_keyring()
    if os.environ.get("CI") and sys.platform.startswith("linux"):
        assert "(Secret Service" in store.status(), store.status()
    return store


@pytest.fixture
def test_app(real_store: SecretStore) -> Iterator[str]:
    app_id = f"org.telemetry-tray.test.{pysecrets.token_hex(6)}"
    yield app_id
    real_store.clear(app_id)


def _in_secret_service(app_id: str) -> list[bytes]:
    """What the Secret Service itself holds for app_id, read around our wrapper and keyring."""
    import secretstorage

    with closing(secretstorage.dbus_init()) as bus:
        collection = secretstorage.get_default_collection(bus)
        return [item.get_secret() for item in collection.search_items({"service": SERVICE, "username": app_id})]


def test_real_keyring_round_trip(real_store: SecretStore, test_app: str) -> None:
    secret = f"real-{pysecrets.token_urlsafe(24)}"
    assert real_store.get(test_app) is None
    assert not real_store.has(test_app)
    assert real_store.clear(test_app) is False
    real_store.set(test_app, secret + "\n")
    assert real_store.get(test_app) == secret
    assert real_store.has(test_app)
    assert real_store.headers_for(test_app, "bearer") == {"Authorization": f"Bearer {secret}"}
    # A second store (another process would do the same) finds it: it is in the OS keyring.
    assert SecretStore().get(test_app) == secret
    if "(Secret Service" in real_store.status():
        assert _in_secret_service(test_app) == [secret.encode()]
    real_store.set(test_app, "second")
    assert real_store.get(test_app) == "second"
    assert real_store.clear(test_app) is True
    assert real_store.get(test_app) is None
    assert not real_store.has(test_app)
    assert real_store.clear(test_app) is False
    if "(Secret Service" in real_store.status():
        assert _in_secret_service(test_app) == []


def test_real_keyring_secret_never_reaches_a_file_or_log_of_ours(
    real_store: SecretStore, test_app: str, world: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = f"never-on-disk-{pysecrets.token_urlsafe(24)}"
    tray_home = Path(os.environ["TELEMETRY_TRAY_HOME"])
    tray_home.mkdir(parents=True)
    real_store.set(test_app, secret)
    assert real_store.get(test_app) == secret
    assert real_store.headers_for(test_app, "header:X-Api-Key") == {"X-Api-Key": secret}
    real_store.clear(test_app)
    assert files_holding(world, secret) == []
    assert files_under(tray_home) == []
    assert secret not in caplog.text


def test_real_keyring_status_and_other_apps_untouched(real_store: SecretStore, test_app: str) -> None:
    assert real_store.status().startswith("Vendor secrets are kept in the OS keyring (")
    other = f"{test_app}.other"
    try:
        real_store.set(test_app, "mine")
        real_store.set(other, "theirs")
        assert real_store.clear(test_app) is True
        assert real_store.get(other) == "theirs"
    finally:
        real_store.clear(other)
