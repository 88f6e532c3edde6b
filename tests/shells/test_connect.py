"""``telemetry-tray connect APP``: the real command in a subprocess, beside a real running
instance, with the real OS keyring (tests/support/keyring_session.py), and the stock Python
OpenTelemetry SDK configured by exactly the lines it prints.

One instance serves the module (TELEMETRY_TRAY_OTLP_PORT=0: any free port, which ``connect``
must read from the instance's otlp.json); each test registers its own app and removes it, so
the keyring keeps nothing of one test for another.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest

from tests.shells.test_otlp_ingest import EMIT, MANIFEST
from tests.support.keyring_session import real_keyring
from tests.support.processes import Proc, post, tray_cli, tray_env
from tray_app.core import AuthError, Broker, Credentials, Locations, SecretStore

NAMES = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
]
REPLACED = "no longer works"
_apps = count(1)


class Tray:
    def __init__(self, proc: Proc, home: Path, keyring: SecretStore) -> None:
        self.proc = proc
        self.home = home
        self.keyring = keyring
        status = self.cli("status", "--json")
        self.otlp_url: str = json.loads(status.stdout)["otlp_url"]
        assert self.otlp_url and self.otlp_url.startswith("http://127.0.0.1:")

    def cli(self, *args: str, code: int | None = 0) -> subprocess.CompletedProcess[str]:
        result = self.proc.cli(*args)
        assert "Traceback" not in result.stderr, result.stderr
        if code is not None:
            assert result.returncode == code, (result.stdout, result.stderr)
        return result

    def register(self, *, otlp: bool = True) -> tuple[str, str, Path]:
        """A new app (its own id) awaiting consent: its id, the token register printed, its manifest."""
        app_id = f"org.example.connect{next(_apps)}"
        path = self.home.parent / f"{app_id}.toml"
        table = '\n[otlp]\nservice_names = ["tiny", "tiny-too"]\n' if otlp else ""
        path.write_text(MANIFEST.format(app_id=app_id, otlp=table), encoding="utf-8")
        result = self.cli("register", str(path))
        return app_id, result.stdout.strip().splitlines()[-1], path

    def kept_token(self, app_id: str) -> str | None:
        """What the OS keyring keeps for ``app_id`` of this home, read as the core reads it."""
        broker = Broker.open(Locations.under(self.home))
        try:
            return self.keyring.app_token(app_id, Credentials(broker, self.keyring).home)
        finally:
            broker.close()

    def stored(self, app_id: str) -> int:
        pending = json.loads(self.cli("pending", "--json").stdout)
        return sum(batch["reports"] for batch in pending if batch["app_id"] == app_id)


@pytest.fixture(scope="module")
def tray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tray]:
    keyring = real_keyring()
    home = tmp_path_factory.mktemp("connect") / "home"
    with Proc(home, extra_env={"TELEMETRY_TRAY_OTLP_PORT": "0"}) as proc:
        yield Tray(proc, home, keyring)
        assert proc.stop() == 0


@pytest.fixture
def app(tray: Tray) -> Iterator[tuple[str, str, Path]]:
    registered = tray.register()
    yield registered
    tray.cli("remove", registered[0], code=None)


def parse(lines: str) -> dict[str, str]:
    """The ``KEY=VALUE`` lines as a POSIX shell sourcing them would set them."""
    variables = {}
    for line in lines.splitlines():
        name, sep, value = line.partition("=")
        assert sep and name.isidentifier(), line
        [variables[name]] = shlex.split(value)
    return variables


def token_of(variables: dict[str, str]) -> str:
    header = variables["OTEL_EXPORTER_OTLP_HEADERS"]
    assert header.startswith("Authorization=Bearer%20"), header
    return header.removeprefix("Authorization=Bearer%20")


def sdk(what: str, variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The stock SDK sending ``what``, configured by ``variables`` alone (no OTEL_ of ours)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(variables)
    result = subprocess.run(
        [sys.executable, "-c", EMIT, what], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result


def native_status(tray: Tray, token: str) -> int:
    status, _ = post(tray.proc.url, "/v1/reports", {"event": "export"}, token)
    return status


# ---------------------------------------------------------------------------------------------


def test_the_lines_point_a_stock_sdk_at_the_running_tray(tray: Tray, app: tuple[str, str, Path]) -> None:
    app_id, registered, _ = app
    result = tray.cli("connect", app_id)
    lines = result.stdout.splitlines()
    assert [line.partition("=")[0] for line in lines] == NAMES  # stdout holds the lines and nothing else
    variables = parse(result.stdout)
    assert variables == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": tray.otlp_url,  # the port the instance really took (otlp.json)
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{token_of(variables)}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "tiny",  # the manifest's first service name
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
    }
    token = token_of(variables)
    assert len(token) >= 43 and token != registered
    # The token register printed was replaced, and the person is told, beside the lines.
    assert REPLACED in result.stderr and token not in result.stderr
    assert f"consent {app_id} allow" in result.stderr
    # The stock SDK, configured by exactly these lines, is heard: its logs and its delta counter
    # are held for review (the app awaits consent).
    assert "Failed to export" not in sdk("logs", variables).stderr
    sdk("metrics", variables)
    assert tray.stored(app_id) == 3  # two log records and one counter point (the histogram is refused)
    tray.cli("close-batches")
    pending = json.loads(tray.cli("pending", "--json").stdout)
    assert {batch["status"] for batch in pending if batch["app_id"] == app_id} == {"held"}
    # --json: the same variables, as an object.
    again = tray.cli("connect", app_id, "--json")
    assert json.loads(again.stdout) == variables


def test_connecting_twice_prints_the_same_token_and_the_app_keeps_working(
    tray: Tray, app: tuple[str, str, Path]
) -> None:
    app_id, registered, _ = app
    first = tray.cli("connect", app_id)
    token = token_of(parse(first.stdout))
    assert tray.kept_token(app_id) == token  # kept in the OS keyring, the one place secrets live
    second = tray.cli("connect", app_id)
    assert second.stdout == first.stdout
    assert REPLACED not in second.stderr
    assert native_status(tray, token) == 202
    assert native_status(tray, registered) == 401  # the first connect replaced register's token


def test_a_replaced_token_stops_working_and_connect_says_so(tray: Tray, app: tuple[str, str, Path]) -> None:
    app_id, _, manifest = app
    old = token_of(parse(tray.cli("connect", app_id).stdout))
    assert native_status(tray, old) == 202
    # register FILE at the CLI issues a new token: the kept one is stale, so connect issues another.
    reregistered = tray.cli("register", str(manifest)).stdout.strip().splitlines()[-1]
    result = tray.cli("connect", app_id)
    new = token_of(parse(result.stdout))
    assert new not in (old, reregistered)
    assert REPLACED in result.stderr
    assert native_status(tray, old) == 401
    assert native_status(tray, reregistered) == 401
    assert native_status(tray, new) == 202
    assert tray.kept_token(app_id) == new


def test_an_app_without_an_otlp_table_is_exit_2_and_nothing_changes(tray: Tray) -> None:
    app_id, registered, _ = tray.register(otlp=False)
    try:
        result = tray.cli("connect", app_id, code=2)
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("telemetry-tray: ")
        assert '[otlp] service_names = ["..."]' in result.stderr
        assert native_status(tray, registered) == 202  # its token was not replaced
        assert tray.kept_token(app_id) is None
        unknown = tray.cli("connect", "org.example.nobody", code=2)
        assert unknown.stderr.startswith("telemetry-tray: No app 'org.example.nobody' is registered.")
    finally:
        tray.cli("remove", app_id)


def test_remove_forgets_the_kept_token(tray: Tray) -> None:
    app_id, _, _ = tray.register()
    token = token_of(parse(tray.cli("connect", app_id).stdout))
    assert tray.kept_token(app_id) == token
    result = tray.cli("remove", app_id)
    assert "The token connect kept for it was removed from the OS keyring." in result.stdout
    assert token not in result.stdout + result.stderr
    assert tray.kept_token(app_id) is None


def test_without_a_keyring_the_token_is_printed_once_and_written_nowhere(tmp_path: Path) -> None:
    keyring = real_keyring()
    home = tmp_path / "home"
    # No instance runs here: the lines name the port an instance would take.
    env = tray_env(home, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", TELEMETRY_TRAY_OTLP_PORT="4319")
    run = tray_cli(env)
    manifest = tmp_path / "tiny.toml"
    app_id = "org.example.nokeyring"
    manifest.write_text(MANIFEST.format(app_id=app_id, otlp='[otlp]\nservice_names = ["tiny"]\n'), encoding="utf-8")
    run("register", str(manifest))
    result = run("connect", app_id)
    variables = parse(result.stdout)
    token = token_of(variables)
    assert variables["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4319"
    assert "shown only this once" in result.stderr and "No OS keyring can keep it" in result.stderr
    assert REPLACED in result.stderr and "not running" in result.stderr
    assert token not in result.stderr
    broker = Broker.open(Locations.under(home))
    try:
        assert broker.authenticate(token).app_id == app_id  # the token printed works
        assert keyring.app_token(app_id, Credentials(broker, keyring).home) is None
    finally:
        broker.close()
    # No file of ours holds it (the database keeps its hash only), WAL and journal included.
    holding = [str(path) for path in home.rglob("*") if path.is_file() and token.encode() in path.read_bytes()]
    assert holding == []
    # Nothing could keep it, so a second connect cannot print it again: it issues another.
    second = token_of(parse(run("connect", app_id).stdout))
    assert second != token
    broker = Broker.open(Locations.under(home))
    try:
        with pytest.raises(AuthError):
            broker.authenticate(token)
    finally:
        broker.close()
