from __future__ import annotations

import sqlite3
import stat
import sys
from pathlib import Path

import pytest

from tests.support.builders import db_at_version, integrity_ok, tiny
from tray_app.core import Broker, Locations
from tray_app.core.errors import NewerDatabaseError, StoreError
from tray_app.core.storage.migrations import LATEST, MIGRATIONS
from tray_app.core.storage.store import Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private_and_wal(tmp_path: Path) -> None:
    locations = Locations.under(tmp_path / "home")
    broker = Broker.open(locations)
    broker.register(tiny())  # a write, so the WAL files exist
    db = locations.database
    assert db.name == "telemetry-tray.sqlite3"
    assert _mode(db.parent) == 0o700
    assert _mode(db) == 0o600
    for suffix in ("-wal", "-shm"):
        side = db.with_name(db.name + suffix)
        assert side.exists() and _mode(side) == 0o600
    assert broker.store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    broker.close()


def test_loose_permissions_are_repaired(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Broker.open(Locations.under(home)).close()
    db = Locations.under(home).database
    db.chmod(0o644)
    db.parent.chmod(0o755)
    Broker.open(Locations.under(home)).close()
    assert _mode(db) == 0o600 and _mode(db.parent) == 0o700


# Rows an older schema can hold, per version; each must survive every later upgrade.
_SEED = {
    1: [
        "INSERT INTO apps VALUES ('org.a.b','A','V','https://x.org/',1,'allowed','ask','{\"fields\":[],\"coarsen\":{},\"mode\":\"records\"}','h','t','t')",
        "INSERT INTO settings VALUES ('retention_days','12')",
        "INSERT INTO batches VALUES ('b1','org.a.b',1,'w0','w1','approved',0,'c','c','2026-01-01T00:00:00Z','person',"
        "'{}','https://x.org/',X'7B7D','44136fa3','2')",
    ],
}
# Schema 4, before noise seeds: an approved batch and undecided ones (pending, held, open).
_SEED[4] = [
    *_SEED[1],
    *(
        f"INSERT INTO batches (batch_id, app_id, manifest_version, window_start, window_end, status, created_at) "
        f"VALUES ('{status[0]}1','org.a.b',1,'w0','w1','{status}','c')"
        for status in ("pending", "held", "open", "discarded")
    ),
]


@pytest.mark.parametrize("version", sorted(_SEED))
def test_seed_rows_fit_their_schema(tmp_path: Path, version: int) -> None:
    db = tmp_path / "seed.sqlite3"
    db_at_version(db, version)
    conn = sqlite3.connect(db)
    for statement in _SEED[version]:
        conn.execute(statement)
    conn.commit()


@pytest.mark.parametrize("start", range(LATEST))
def test_upgrade_from_every_earlier_schema(tmp_path: Path, start: int) -> None:
    db = tmp_path / "telemetry-tray.sqlite3"
    db_at_version(db, start)
    if start in _SEED:
        conn = sqlite3.connect(db)
        for statement in _SEED[start]:
            conn.execute(statement)
        conn.commit()
        conn.close()
    store = Store.open(db)
    assert store.schema_version() == LATEST
    assert integrity_ok(db)
    if start in _SEED:
        assert store.app("org.a.b") is not None
        assert store.setting("retention_days") == "12"
        assert store.payload("b1") == b"{}"
    if start in _SEED:
        # Undecided batches get a secret seed of their own for noise, from Python's
        # generator; decided ones need none (their payload, or nothing, is stored).
        assert store.noise_seed("b1") is None
    if start == 4:
        seeds = [store.noise_seed(batch) for batch in ("p1", "h1", "o1")]
        assert all(seed is not None and len(seed) == 32 for seed in seeds)
        assert len(set(seeds)) == 3
        assert store.noise_seed("d1") is None
    if start == 1:
        # Batches approved before deliveries existed are due at once, not forgotten.
        delivery = store.delivery("b1")
        assert delivery is not None and delivery.next_attempt_at == "2026-01-01T00:00:00Z"
        backup = db.with_name(f"{db.name}.v{start}.bak")
        assert backup.exists() and _mode(backup) == 0o600
        assert sqlite3.connect(backup).execute("PRAGMA user_version").fetchone()[0] == start
    store.close()


def test_a_migration_is_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "telemetry-tray.sqlite3"
    broken = ((*MIGRATIONS[0][:3], "CREATE TABLE oops (", *MIGRATIONS[0][3:]),)
    monkeypatch.setattr("tray_app.core.storage.store.MIGRATIONS", broken)
    with pytest.raises(StoreError):
        Store.open(db)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_a_migrations_fill_is_part_of_its_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "telemetry-tray.sqlite3"
    db_at_version(db, 4)

    def fails(execute: object) -> None:
        raise RuntimeError("the power went")

    monkeypatch.setattr("tray_app.core.storage.store.FILLS", {5: fails})
    with pytest.raises(RuntimeError):
        Store.open(db)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    columns = [row[1] for row in conn.execute("PRAGMA table_info(batches)")]
    assert "noise_seed" not in columns
    conn.close()


def _untouched(db: Path, before: bytes, mode: int) -> None:
    assert db.read_bytes() == before
    assert _mode(db) == mode
    assert not db.with_name(db.name + "-wal").exists()


def test_a_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "telemetry-tray.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE future (x)")
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.commit()
    conn.close()
    db.chmod(0o640)
    before = db.read_bytes()
    with pytest.raises(NewerDatabaseError, match="newer Telemetry Tray"):
        Store.open(db)
    _untouched(db, before, 0o640)


def test_a_foreign_database_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "telemetry-tray.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    db.chmod(0o644)
    before = db.read_bytes()
    with pytest.raises(StoreError, match="another program"):
        Store.open(db)
    _untouched(db, before, 0o644)


def test_a_symlinked_database_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    target.chmod(0o644)
    db = tmp_path / "data" / "telemetry-tray.sqlite3"
    db.parent.mkdir(mode=0o700)
    db.symlink_to(target)
    with pytest.raises(StoreError, match="symbolic link"):
        Store.open(db)
    assert target.read_text() == "keep me" and _mode(target) == 0o644


def test_the_home_folder_is_private(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    Broker.open(Locations.under(home)).close()
    assert _mode(home) == 0o700 and _mode(home / "data") == 0o700


def test_a_home_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "file"
    home.write_text("x")
    with pytest.raises(StoreError, match="Cannot use the folder"):
        Broker.open(Locations.under(home))


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "telemetry-tray.sqlite3"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"not a Telemetry Tray database"):
        Store.open(db)
    assert db.read_bytes() == b"this is not sqlite" * 100


def test_a_failed_write_changes_nothing(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "db.sqlite3")

    def fail_half_way() -> None:
        with store.write():
            store.set_setting("a", "1")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert store.setting("a") is None
    with store.write():
        store.set_setting("a", "2")
    assert store.setting("a") == "2"


def test_two_homes_share_nothing(tmp_path: Path) -> None:
    a, b = Locations.under(tmp_path / "a"), Locations.under(tmp_path / "b")
    assert {a.database, a.endpoint_file, a.spool}.isdisjoint({b.database, b.endpoint_file, b.spool})
    Broker.open(a).register(tiny())
    assert Broker.open(b).apps() == []


def test_home_comes_from_the_environment(tmp_path: Path) -> None:
    loc = Locations.from_env({"TELEMETRY_TRAY_HOME": str(tmp_path)})
    assert loc.database == tmp_path / "data" / "telemetry-tray.sqlite3"
    assert loc.endpoint_file == tmp_path / "endpoint.json"
    default = Locations.from_env({})
    assert "telemetry-tray" in str(default.database)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_RUNTIME_DIR is a Linux convention")
def test_no_runtime_dir_means_the_private_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    loc = Locations.from_env({})
    assert loc.runtime == loc.data
    assert not str(loc.endpoint_file).startswith("/tmp")


def test_migrating_an_existing_database_keeps_a_copy_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "telemetry-tray.sqlite3"
    store = Store.open(db)
    with store.write():
        store.set_setting("kept", "yes")
    store.close()
    # A release with one more migration than this one.
    monkeypatch.setattr("tray_app.core.storage.store.MIGRATIONS", (*MIGRATIONS, ("CREATE TABLE later (x TEXT)",)))
    monkeypatch.setattr("tray_app.core.storage.store.LATEST", LATEST + 1)
    upgraded = Store.open(db)
    assert upgraded.schema_version() == LATEST + 1
    assert upgraded.setting("kept") == "yes"
    backup = db.with_name(f"{db.name}.v{LATEST}.bak")
    assert _mode(backup) == 0o600
    copy = sqlite3.connect(backup)
    assert copy.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert copy.execute("SELECT value FROM settings WHERE key = 'kept'").fetchone() == ("yes",)
    assert copy.execute("SELECT count(*) FROM sqlite_master WHERE name = 'later'").fetchone() == (0,)


def test_a_finished_threads_connection_is_closed_and_no_other(tmp_path: Path) -> None:
    import gc
    import threading

    store = Store.open(tmp_path / "db.sqlite3")
    store.setting("x")  # this thread's connection
    for _ in range(20):
        worker = threading.Thread(target=lambda: store.setting("x"))
        worker.start()
        worker.join()
    gc.collect()
    assert len(store._connections) == 1  # only ours is left open
    assert store.setting("x") is None  # and it still works


def test_receipt_lookups_do_not_scan_the_whole_history(tmp_path: Path) -> None:
    # Receipts are kept for good; a decided batch's count and recent failures are looked up often.
    store = Store.open(tmp_path / "db.sqlite3")
    conn = sqlite3.connect(store.path)
    for query, params in (
        ("SELECT * FROM receipts WHERE batch_id = ? ORDER BY seq", ("b1",)),
        ("SELECT count(*) FROM receipts WHERE action = ? AND at >= ?", ("failed", "2026-01-01")),
    ):
        plan = " ".join(str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + query, params))
        assert "USING" in plan and "INDEX" in plan, plan
    conn.close()
    store.close()
