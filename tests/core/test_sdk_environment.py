"""What ``connect`` rests on: the environment lines (a pure rule) and Credentials.connect
(the token kept in the keyring, a new one only when it no longer works), with a keyring in a dict."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from keyring import errors as kerrors

from tests.support.builders import tiny
from tests.support.keyrings import MemoryKeyring
from tray_app.core import AuthError, Broker, Credentials, CredentialsError, InputError, Locations
from tray_app.core.platform.secrets import APP_TOKEN_SERVICE, SERVICE, SecretStore
from tray_app.core.rules.sdk_environment import sdk_environment

APP = "org.example.tiny"
URL = "http://127.0.0.1:4318"


class LockedKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise kerrors.KeyringLocked("the collection is locked")


def otlp_app(broker: Broker, *names: str) -> str:
    """Registers the tiny app with an [otlp] table; the token register issued."""
    return broker.register(tiny(otlp={"service_names": list(names or ["tiny"])})).token


def test_the_lines_are_shell_lines_of_the_variables_in_order() -> None:
    environment = sdk_environment(tiny(otlp={"service_names": ["it's mine", "b"]}), otlp_url=URL, token="t0k-_")
    assert environment.to_obj() == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": URL,
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20t0k-_",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "it's mine",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
    }
    # A value a shell would split or unquote is quoted; sourcing the lines gives the values back.
    assert environment.lines()[3] == "OTEL_SERVICE_NAME='it'\"'\"'s mine'"
    assert environment.lines()[0] == f"OTEL_EXPORTER_OTLP_ENDPOINT={URL}"
    parsed = {line.partition("=")[0]: shlex.split(line.partition("=")[2])[0] for line in environment.lines()}
    assert parsed == environment.to_obj()
    with pytest.raises(InputError, match=r"\[otlp\] service_names"):
        sdk_environment(tiny(), otlp_url=URL, token="t")


def test_connect_keeps_its_token_apart_from_the_vendor_secret_and_reuses_it(broker: Broker) -> None:
    keyring = MemoryKeyring()
    credentials = Credentials(broker, SecretStore(keyring))
    registered = otlp_app(broker)
    keyring.set_password(SERVICE, APP, "vendor-secret")  # the vendor's, under the app id
    first = credentials.connect(APP, otlp_url=URL)
    assert first.replaced and first.kept and first.token not in repr(first)
    assert keyring.items == {
        (SERVICE, APP): ["vendor-secret"],
        (APP_TOKEN_SERVICE, f"{APP}@{credentials.home}"): [first.token],
    }
    assert broker.authenticate(first.token).app_id == APP
    with pytest.raises(AuthError):
        broker.authenticate(registered)
    second = credentials.connect(APP, otlp_url=URL)
    assert second.token == first.token and not second.replaced and second.lines() == first.lines()
    # A token no longer the app's (register issued another) is not printed: a new one is.
    broker.register(tiny(otlp={"service_names": ["tiny"]}), new_token=True)
    third = credentials.connect(APP, otlp_url=URL)
    assert third.replaced and third.token != first.token and broker.authenticate(third.token).app_id == APP
    # Removing the app forgets the token, and leaves nothing of it in the keyring.
    removal = credentials.remove_app(APP)
    assert removal.token_cleared and keyring.items == {(SERVICE, APP): ["vendor-secret"]}  # auth = none: not its


def test_two_homes_keep_their_own_tokens(broker: Broker, tmp_path: Path) -> None:
    keyring = MemoryKeyring()
    other = Broker.open(Locations.under(tmp_path / "other"))
    try:
        otlp_app(broker)
        otlp_app(other)
        here, there = Credentials(broker, SecretStore(keyring)), Credentials(other, SecretStore(keyring))
        assert here.home != there.home
        token = here.connect(APP, otlp_url=URL).token
        there.connect(APP, otlp_url=URL)
        again = here.connect(APP, otlp_url=URL)
        assert again.token == token and not again.replaced
    finally:
        other.close()


def test_a_locked_keyring_changes_nothing_and_no_keyring_shows_the_token_once(broker: Broker) -> None:
    registered = otlp_app(broker)
    with pytest.raises(CredentialsError, match="locked"):
        Credentials(broker, SecretStore(LockedKeyring())).connect(APP, otlp_url=URL)
    assert broker.authenticate(registered).app_id == APP
    from keyring.backends import fail

    once = Credentials(broker, SecretStore(fail.Keyring())).connect(APP, otlp_url=URL)
    assert once.replaced and not once.kept and once.no_keyring.startswith("No OS keyring can keep it")
    assert broker.authenticate(once.token).app_id == APP


def test_an_app_without_an_otlp_table_changes_nothing(broker: Broker) -> None:
    keyring = MemoryKeyring()
    registered = broker.register(tiny()).token
    with pytest.raises(InputError, match=r"no \[otlp\] table"):
        Credentials(broker, SecretStore(keyring)).connect(APP, otlp_url=URL)
    assert broker.authenticate(registered).app_id == APP and keyring.calls == []
