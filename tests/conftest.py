"""Shared fixtures: a real SQLite file in a temporary home, a clock tests can move."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

# Real Qt widgets, drawn offscreen, whoever runs pytest (the tray test under Xvfb starts
# its own process with its own display).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tray_app.core import Broker, Locations, Manifest, load_manifest
from tray_app.core.manifest import manifest_from_obj

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
