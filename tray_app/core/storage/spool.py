"""The spool: where the client SDK leaves reports while the instance is not running.

One folder per app under ``<data>/spool/``; one file per flush, written atomically
(temporary name, then rename), so the instance never reads half a file. A file holds
the app id, the SHA-256 of the app's token (never the token itself) and the reports:

    {"app_id": "...", "token_sha256": "...", "reports": [...], "key": "..."}

``key`` is the Idempotency-Key of the request the reports were (or would have been) sent
in; files from before it existed have none.

The spool is bounded per app; when full, the oldest files go first and the number of
reports they held is added to ``dropped`` in the app's folder. When the instance
starts it drains the spool through the broker, with the same checks as HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError, TrayError
from ..platform.files import ensure_private_dir, write_file_whole

MAX_FILES_PER_APP = 1000
MAX_BYTES_PER_APP = 16 * 1024 * 1024
SUFFIX = ".json"
DROPPED = "dropped"
REJECTED = "rejected"


@dataclass
class SpoolDrain:
    """What draining the spool did."""

    files: int = 0
    accepted: int = 0
    rejected: int = 0
    dropped_by_clients: int = 0
    bad_files: list[str] = field(default_factory=list)
    complete: bool = True  # False when the database was busy or full and files stayed


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _app_dir(self, app_id: str) -> Path:
        # app ids are reverse-DNS names (letters, digits, dots, - and _), safe as names.
        if not app_id or "/" in app_id or "\\" in app_id or app_id.startswith("."):
            raise ValueError(f"not an app id: {app_id!r}")
        return self.root / app_id

    def write(self, app_id: str, token_sha256: str, reports: Sequence[object], *, key: str | None = None) -> Path:
        """Leave reports for the instance, with the request's Idempotency-Key if it has one
        (the instance may have stored them already, its answer lost); returns the file."""
        folder = ensure_private_dir(self._app_dir(app_id))
        obj: dict[str, object] = {"app_id": app_id, "token_sha256": token_sha256, "reports": list(reports)}
        if key is not None:
            obj["key"] = key
        body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self._make_room(folder, len(body))
        # Names sort in write order: nanoseconds, then randomness against collisions.
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
        # Durable: these reports exist nowhere else once the app has let go of them.
        return write_file_whole(folder / f"{name}{SUFFIX}", body, durable=True)

    def _make_room(self, folder: Path, incoming: int) -> None:
        files = _spool_files(folder)
        total = sum(_size(path) for path in files) + incoming
        dropped = 0
        while files and (len(files) >= MAX_FILES_PER_APP or total > MAX_BYTES_PER_APP):
            oldest = files.pop(0)
            total -= _size(oldest)
            dropped += _report_count(oldest)
            oldest.unlink(missing_ok=True)
        if dropped:
            counter = folder / DROPPED
            counter.write_text(str(_read_int(counter) + dropped))

    def dropped(self, app_id: str) -> int:
        return _read_int(self._app_dir(app_id) / DROPPED)

    def files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found: list[Path] = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != REJECTED):
            found.extend(_spool_files(folder))
        return found

    def drain(self, ingest: Any, authenticate: Any) -> SpoolDrain:
        """Feed every spooled file to ``ingest(app_id, reports, key=...)`` after checking its
        token hash with ``authenticate(app_id, token_sha256) -> bool``. A file that
        cannot be read or does not authenticate is moved to ``rejected/``; a file is
        deleted only after its reports are stored."""
        result = SpoolDrain()
        for path in self.files():
            result.files += 1
            try:
                obj = json.loads(path.read_bytes())
                app_id, digest, reports = obj["app_id"], obj["token_sha256"], obj["reports"]
                if path.parent.name != app_id or not isinstance(reports, list):
                    raise ValueError("the file does not match its folder")
                if not authenticate(app_id, digest):
                    raise ValueError("the token does not match the app")
                key = obj.get("key")
                if key is not None and not isinstance(key, str):
                    raise ValueError("the file's key is not text")
                # With the key, a file stored before a crash could delete it is stored once.
                outcome = ingest(app_id, reports, key=key)
            except StoreError:
                # The database is busy or full: the file stays for the next round.
                result.complete = False
                break
            except (OSError, ValueError, KeyError, TypeError, TrayError) as exc:
                result.bad_files.append(f"{path.name}: {exc}")
                self._reject(path)
                continue
            result.accepted += outcome.accepted
            result.rejected += len(outcome.rejected)
            path.unlink(missing_ok=True)
        for folder in (p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else ():
            counter = folder / DROPPED
            if counter.exists():
                result.dropped_by_clients += _read_int(counter)
                counter.unlink(missing_ok=True)
        return result

    def purge_rejected(self, older_than_days: int) -> int:
        """Delete set-aside files older than the local retention period: they hold report
        data too, and nothing is kept longer than that. Returns how many went."""
        folder = self.root / REJECTED
        if not folder.is_dir():
            return 0
        cutoff = time.time() - older_than_days * 86400
        gone = 0
        for path in folder.iterdir():
            with contextlib.suppress(OSError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    gone += 1
        return gone

    def _reject(self, path: Path) -> None:
        # Kept, not deleted: nothing is lost without a person being able to look.
        target = ensure_private_dir(self.root / REJECTED)
        os.replace(path, target / f"{path.parent.name}-{path.name}")


def _spool_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == SUFFIX and not p.name.startswith("."))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _report_count(path: Path) -> int:
    try:
        reports = json.loads(path.read_bytes()).get("reports", [])
        return len(reports) if isinstance(reports, list) else 0
    except (OSError, ValueError, AttributeError):
        return 0


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0
