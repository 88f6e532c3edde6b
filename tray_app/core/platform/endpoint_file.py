"""The running instance as other processes see it: its lock, ``endpoint.json`` and ``otlp.json``.

One instance per home: the instance holds an OS file lock on ``<data>/instance.lock``
for as long as it runs (the OS drops it if the process dies, so a crash never leaves a
stale lock). ``endpoint.json`` tells clients where it listens; it is written atomically
once the endpoint serves and removed on a clean exit.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import AlreadyRunning, StopFailed
from .files import ensure_private_dir, write_file_whole
from .paths import Locations

LOCK_NAME = "instance.lock"


@dataclass(frozen=True)
class Endpoint:
    url: str
    pid: int
    version: str


class InstanceLock:
    """A non-blocking exclusive lock that names its holder."""

    def __init__(self, locations: Locations) -> None:
        self.path = locations.data / LOCK_NAME
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        handle = os.fdopen(fd, "r+", encoding="utf-8")
        # holder() (telemetry-tray quit, waiting for an instance to go) takes a free lock for
        # a moment: a start that meets it tries again before saying another instance runs.
        for attempt in range(_LOCK_TRIES):
            if _try_lock(handle):
                break
            if attempt == _LOCK_TRIES - 1:
                holder = _read_pid(handle)
                handle.close()
                raise AlreadyRunning(holder)
            time.sleep(0.05)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def holder(self) -> int | None:
        """The pid of the process holding this lock, or None when nobody holds it.

        Reading only: the lock is taken for a moment only when its file names a pid, and
        only to learn whether that pid still holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        with os.fdopen(fd, "r+", encoding="utf-8") as handle:
            pid = _read_pid(handle)
            if pid is None or not _try_lock(handle):
                return pid
            return None  # closing the handle drops the lock we just took

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the lock
            self._handle = None


_LOCK_TRIES = 4


def stop_instance(locations: Locations, timeout: float = 30.0) -> int | None:
    """Ask the running instance of this home to stop, as its Quit does, and wait until
    it has (it drops its lock when its process ends). Returns its pid, or None when
    none runs.

    The pid comes from ``endpoint.json`` and must be the one the lock file names, so a
    stale file never gets another process signalled. A signal reaches only a process of
    the same user, which is whom this home belongs to.
    """
    endpoint = running_endpoint(locations)
    if endpoint is None:
        return None
    lock = InstanceLock(locations)
    if lock.holder() != endpoint.pid:
        return None
    if sys.platform == "win32":
        raise StopFailed("On Windows, quit Telemetry Tray from its tray menu (Quit).")
    import signal

    try:
        os.kill(endpoint.pid, signal.SIGTERM)
    except ProcessLookupError:
        return endpoint.pid
    except PermissionError:
        raise StopFailed(f"Telemetry Tray (pid {endpoint.pid}) belongs to another user; it was not stopped.") from None
    deadline = time.monotonic() + timeout
    while lock.holder() == endpoint.pid:
        if time.monotonic() > deadline:
            raise StopFailed(
                f"Telemetry Tray (pid {endpoint.pid}) was asked to stop but still runs after {timeout:.0f} s; "
                "it may be finishing a delivery. Try again in a moment."
            )
        time.sleep(0.05)
    return endpoint.pid


def _try_lock(handle: IO[str]) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _read_pid(handle: IO[str]) -> int | None:
    try:
        handle.seek(0)
        return int(handle.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def write_endpoint(locations: Locations, endpoint: Endpoint) -> Path:
    path = locations.endpoint_file
    ensure_private_dir(path.parent)
    body = json.dumps({"url": endpoint.url, "pid": endpoint.pid, "version": endpoint.version})
    # Not durable: the file describes this process, which a power cut ends anyway.
    return write_file_whole(path, body.encode("utf-8"), durable=False)


def remove_endpoint(locations: Locations, pid: int) -> None:
    """Remove endpoint.json if it is still ours (a newer instance may have replaced it)."""
    current = read_endpoint(locations)
    if current is not None and current.pid == pid:
        locations.endpoint_file.unlink(missing_ok=True)


def read_endpoint(locations: Locations) -> Endpoint | None:
    try:
        obj = json.loads(locations.endpoint_file.read_text(encoding="utf-8"))
        return Endpoint(str(obj["url"]), int(obj["pid"]), str(obj["version"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_endpoint(locations: Locations) -> Endpoint | None:
    """The instance's endpoint if its file exists and its process is alive."""
    endpoint = read_endpoint(locations)
    return endpoint if endpoint is not None and _alive(endpoint.pid) else None


OTLP_RECEIVER_NAME = "otlp.json"


@dataclass(frozen=True)
class OtlpReceiver:
    """The running instance's OTLP/HTTP receiver as ``status`` reports it: its ``url``, or
    the ``problem`` that keeps it from serving (its port is taken). Kept in ``otlp.json``
    beside ``endpoint.json``, whose shape (url, pid, version) stays as documented."""

    pid: int
    url: str | None
    problem: str | None


def write_otlp_receiver(locations: Locations, receiver: OtlpReceiver) -> Path:
    path = locations.endpoint_file.with_name(OTLP_RECEIVER_NAME)
    ensure_private_dir(path.parent)
    body = json.dumps({"pid": receiver.pid, "url": receiver.url, "problem": receiver.problem})
    return write_file_whole(path, body.encode("utf-8"), durable=False)


def remove_otlp_receiver(locations: Locations, pid: int) -> None:
    """Remove otlp.json if it is still ours."""
    current = _read_otlp_receiver(locations)
    if current is not None and current.pid == pid:
        locations.endpoint_file.with_name(OTLP_RECEIVER_NAME).unlink(missing_ok=True)


def running_otlp_receiver(locations: Locations, endpoint: Endpoint) -> OtlpReceiver | None:
    """The OTLP receiver of the running instance ``endpoint`` names, if it wrote one."""
    receiver = _read_otlp_receiver(locations)
    return receiver if receiver is not None and receiver.pid == endpoint.pid else None


def _read_otlp_receiver(locations: Locations) -> OtlpReceiver | None:
    try:
        obj = json.loads(locations.endpoint_file.with_name(OTLP_RECEIVER_NAME).read_text(encoding="utf-8"))
        url, problem = obj.get("url"), obj.get("problem")
        return OtlpReceiver(
            int(obj["pid"]), url if isinstance(url, str) else None, problem if isinstance(problem, str) else None
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def wake_instance(locations: Locations, timeout: float = 1.0) -> bool:
    """Ask the running instance, if any, to look for work now (e.g. a batch the CLI just
    approved). Best effort: the instance's own schedule catches up anyway."""
    endpoint = running_endpoint(locations)
    if endpoint is None or not endpoint.url.startswith("http://127.0.0.1:"):
        return False
    request = urllib.request.Request(endpoint.url + "/v1/wake", data=b"", method="POST")  # noqa: S310 - checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our own loopback URL
            return bool(response.status == 202)
    except (OSError, ValueError):
        return False


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
