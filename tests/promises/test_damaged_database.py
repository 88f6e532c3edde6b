"""A damaged database is refused with a message saying what to do, and left exactly as it was."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest

from tests.support.builders import manifest_obj
from tests.support.processes import record_figure, tray_cli, tray_env

APP = "org.example.tiny"


def _used_home(tmp_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "home"
    tt = tray_cli(tray_env(home))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(manifest_obj()))
    tt("register", str(manifest))
    tt("consent", APP, "allow")
    for _ in range(3):
        tt("submit", APP, input=json.dumps({"reports": [{"event": "e" * 1000}] * 200}))
    database = home / "data" / "telemetry-tray.sqlite3"
    with sqlite3.connect(database) as conn:  # everything in the main file, as after a clean exit
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return home, database


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_damaged_database_is_refused_untouched(tmp_path: Path, seed: int) -> None:
    home, database = _used_home(tmp_path)
    rng = random.Random(seed)
    data = bytearray(database.read_bytes())
    pages = len(data) // 4096
    assert pages > 20
    for page in rng.sample(range(1, pages), pages // 3):  # page 0 (the header) stays: it looks like SQLite
        start = page * 4096 + rng.randrange(0, 3000)
        data[start : start + 512] = rng.randbytes(512)
    database.write_bytes(bytes(data))
    tt = tray_cli(tray_env(home))
    damaged = 0
    for verb in (("pending",), ("status",), ("history",), ("close-batches",), ("run", "--headless")):
        result = tt(*verb, code=None)  # tray_cli also checks that no traceback was printed
        if result.returncode == 0 and verb[0] != "run":
            continue  # this verb happened not to touch a damaged page; the instance checks them all
        assert result.returncode == 1, (verb, result.stderr)
        message = result.stderr.strip()
        assert message.count("\n") == 0, message
        if "is damaged" in message:
            damaged += 1
            assert str(database) in message and "move it aside" in message
        else:
            assert message.startswith("telemetry-tray: The database failed:"), message
    assert damaged >= 1
    assert database.read_bytes() == bytes(data)  # nothing repaired, truncated or replaced
    record_figure("faults.damaged_database.refused", damaged)
