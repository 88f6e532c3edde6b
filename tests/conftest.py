"""Fixtures and hooks only: a real SQLite file in a temporary home, a clock tests can move,
the example manifests; and in CI, a skipped test fails the run. What the tests share
besides fixtures lives in tests/support/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

# Real Qt widgets, drawn offscreen, whoever runs pytest (the tray test under Xvfb starts
# its own process with its own display).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.support.builders import NOTESYNC, PHOTOEDIT, Clock
from tray_app.core import Broker, Locations, Manifest, load_manifest


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
