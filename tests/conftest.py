"""Shared fixtures: a real SQLite file in a temporary home, a clock tests can move;
helpers that run the real program in a subprocess (the CLI, a headless instance)."""

from __future__ import annotations

import copy
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

# Real Qt widgets, drawn offscreen, whoever runs pytest (the tray test under Xvfb starts
# its own process with its own display).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tray_app.core import Broker, Locations, Manifest, load_manifest
from tray_app.core.manifest import manifest_from_obj
from tray_app.core.migrations import MIGRATIONS

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "resources" / "manifests"
PHOTOEDIT = MANIFESTS / "photoedit.toml"
NOTESYNC = MANIFESTS / "notes-sync.json"


class Clock:
    """A clock that moves only when told, for windows and retention."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 24, 10, 30, 0, tzinfo=UTC))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def broker(home: Path, clock: Clock) -> Iterator[Broker]:
    broker = Broker.open(Locations.under(home), clock)
    yield broker
    broker.close()


@pytest.fixture
def photoedit() -> Manifest:
    return load_manifest(PHOTOEDIT)


@pytest.fixture
def notesync() -> Manifest:
    return load_manifest(NOTESYNC)


def manifest_obj(**overrides: Any) -> dict[str, Any]:
    """A small valid manifest as a dict, with top-level keys overridden."""
    obj: dict[str, Any] = {
        "app_id": "org.example.tiny",
        "name": "Tiny",
        "version": 1,
        "vendor": "Example",
        "endpoint": "https://t.example.org/v1",
        "privacy_policy": "https://example.org/privacy",
        "retention_days": 30,
        "purpose": "Testing",
        "cadence": "daily",
        "fields": [
            {"name": "event", "type": "string", "description": "what happened", "required": True},
            {"name": "n", "type": "integer", "description": "a number"},
            {"name": "who", "type": "string", "description": "the user", "sensitivity": "identifying"},
        ],
    }
    obj.update(copy.deepcopy(overrides))
    return obj


def tiny(**overrides: Any) -> Manifest:
    return manifest_from_obj(manifest_obj(**overrides))


def allowed(broker: Broker, manifest: Manifest) -> str:
    """Register and allow an app; return its token."""
    token = broker.register(manifest).token
    broker.set_consent(manifest.app_id, True)
    return token


def db_at_version(path: Path, version: int) -> None:
    """A database built by the first ``version`` migrations, as an older release left it."""
    conn = sqlite3.connect(path)
    for number in range(version):
        for statement in MIGRATIONS[number]:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


# -- the real program in subprocesses ------------------------------------------------

Run = Callable[..., subprocess.CompletedProcess[str]]


def tray_env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "TELEMETRY_TRAY_HOME": str(home), **extra}


def tray_cli(env: dict[str, str]) -> Run:
    """``telemetry-tray`` in a subprocess; checks the exit code unless ``code=None``."""

    def run(*args: str, input: str | None = None, code: int | None = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "tray_app", *args], env=env, cwd=ROOT, input=input,
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert "Traceback" not in result.stderr, result.stderr
        if code is not None:
            assert result.returncode == code, (result.stdout, result.stderr)
        return result

    return run


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Whether ``condition()`` came true within ``seconds`` (checked every 20 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class Proc:
    """``telemetry-tray run --headless`` on ``home``, ready once it printed where it listens.

    Its log goes to a temporary file, so a long run never blocks on a full pipe."""

    def __init__(
        self, home: Path, port: int = 0, *, extra_env: dict[str, str] | None = None, ready_s: float = 60.0
    ) -> None:
        self.home = home
        env = tray_env(home, TELEMETRY_TRAY_PORT=str(port), **(extra_env or {}))
        self.env = env
        self.log = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tray_app", "run", "--headless"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=ready_s)  # generous: a busy machine starts slowly
        except queue.Empty:
            line = f"(nothing within {ready_s} s)"
        if "listening on" not in line:
            self.proc.kill()
            self.proc.wait()
            self.log.seek(0)
            raise AssertionError(f"the instance did not start: {line!r}\n{self.log.read()}")
        self.url = line.split("listening on ")[1].split()[0]

    def endpoint(self) -> dict[str, Any]:
        return dict(json.loads((self.home / "endpoint.json").read_text()))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL (TerminateProcess on Windows): no clean-up of any kind."""
        self.proc.kill()
        self.proc.wait()

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tray_app", *args], env=self.env, cwd=ROOT, input=input,
            capture_output=True, text=True, check=False,
        )  # fmt: skip


def post(
    url: str, path: str, obj: object, token: str | None = None, timeout: float = 10, *, key: str | None = None
) -> tuple[int, Any]:
    """POST JSON to the ingest endpoint (with ``key`` as its Idempotency-Key); the status and the decoded answer."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, data=json.dumps(obj).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


FIGURES_ENV = "TELEMETRY_TRAY_FIGURES"


def record_figure(name: str, value: float) -> None:
    """A count for `make bench`'s reliability.faults (kills landed, junk inputs tried ...):
    appended to the file $TELEMETRY_TRAY_FIGURES names, when the bench runs these tests."""
    path = os.environ.get(FIGURES_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as figures:
            figures.write(json.dumps({"name": name, "value": value}) + "\n")


# In CI every test must run: a skip there means a real part was missing.
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") and _skipped:
        print(f"\nCI: {len(_skipped)} test(s) skipped; in CI every test must run:")
        for nodeid in _skipped:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
