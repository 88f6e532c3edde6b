"""The instance's lock file: one instance per home, and what `quit` reads of it."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from tray_app.core import AlreadyRunning, InstanceLock, Locations


def test_a_start_that_meets_a_probe_of_the_free_lock_still_starts(tmp_path: Path) -> None:
    # `telemetry-tray quit` learns whether an instance is gone by taking the free lock for
    # a moment (InstanceLock.holder); an instance starting just then must not mistake
    # that probe for another instance.
    locations = Locations.under(tmp_path / "home")
    lock = InstanceLock(locations)
    lock.acquire()
    lock.release()
    probe = os.open(lock.path, os.O_RDWR)
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    threading.Timer(0.06, os.close, (probe,)).start()
    starting = InstanceLock(locations)
    starting.acquire()
    try:
        assert starting.holder() == os.getpid()
    finally:
        starting.release()


def test_a_held_lock_still_refuses_a_second_instance_naming_its_pid(tmp_path: Path) -> None:
    locations = Locations.under(tmp_path / "home")
    first = InstanceLock(locations)
    first.acquire()
    try:
        assert InstanceLock(locations).holder() == os.getpid()
        with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
            InstanceLock(locations).acquire()
    finally:
        first.release()
    assert InstanceLock(locations).holder() is None
