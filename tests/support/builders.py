"""Builders for tests: example manifests, a small valid manifest, an allowed app, a database
as an older release left it, and a clock that moves only when told."""

from __future__ import annotations

import copy
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tray_app.core import Broker, Manifest
from tray_app.core.rules.manifest import manifest_from_obj
from tray_app.core.storage.migrations import MIGRATIONS

ROOT = Path(__file__).resolve().parents[2]
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


def integrity_ok(path: Path) -> bool:
    """SQLite's own check of the whole database file, on a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        return bool(conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
    finally:
        conn.close()


def db_at_version(path: Path, version: int) -> None:
    """A database built by the first ``version`` migrations, as an older release left it."""
    conn = sqlite3.connect(path)
    for number in range(version):
        for statement in MIGRATIONS[number]:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()
