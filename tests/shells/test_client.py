"""The client SDK against a real running instance (in-process and as a process), a real
spool and real HTTP: no mocks."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tray_app.core.storage.spool as spool_module
from tests.promises.test_layers import BLOCK_QT
from tests.support.builders import PHOTOEDIT, ROOT, manifest_obj
from tests.support.processes import Proc, wait_for
from tray_app.client import BATCH_SIZE, ClientError, NotRunning, RegistrationRefused, TelemetryClient
from tray_app.core import Broker, Locations, TrayError, load_manifest
from tray_app.core.errors import ManifestError
from tray_app.core.storage.spool import Spool
from tray_app.ingest.instance import Instance

APP = "org.example.photoedit"
QUIET = 3600.0  # a flush interval that never comes during a test: only flush() sends


def crop(i: int = 0) -> dict[str, object]:
    return {"event": "crop", "ts": "2026-11-24T10:11:12Z", "app_version": "3.1.4", "duration_ms": i}


def stored(broker: Broker, app_id: str = APP) -> int:
    """How many reports of the app wait in the database."""
    return sum(batch.reports for batch in broker.pending() if batch.app_id == app_id)


def spool_files(home: Path, app_id: str = APP) -> list[Path]:
    folder = Locations.under(home).spool / app_id
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


@pytest.fixture
def instance(home: Path) -> Iterator[Instance]:
    inst = Instance(Locations.under(home))
    inst.start()
    yield inst
    inst.stop()


def broker_of(inst: Instance) -> Broker:
    assert inst.broker is not None
    return inst.broker


@pytest.fixture
def client(instance: Instance, home: Path) -> Iterator[TelemetryClient]:
    """PhotoEdit registered over HTTP and allowed by the person."""
    c = TelemetryClient.register(PHOTOEDIT, home=home, flush_interval=QUIET)
    broker_of(instance).set_consent(c.app_id, True)
    yield c
    c.close()


def registered_token(home: Path) -> str:
    """Register PhotoEdit while an instance runs, then stop it: the app has a token
    and nothing is running."""
    inst = Instance(Locations.under(home))
    inst.start()
    try:
        c = TelemetryClient.register(PHOTOEDIT, home=home)
        broker_of(inst).set_consent(APP, True)
        c.close()
    finally:
        inst.stop()
    return c.token


# -- registering -----------------------------------------------------------------------


def test_register_report_flush_stores_reports(client: TelemetryClient, instance: Instance) -> None:
    assert client.app_id == APP
    assert client.status == "awaiting_consent"
    assert len(client.token) >= 40
    for i in range(1234):  # more than two batches of 500
        client.report(crop(i))
    assert client.flush(timeout=30)
    assert stored(broker_of(instance)) == 1234
    stats = client.stats
    assert (stats.queued, stats.sent, stats.pending) == (1234, 1234, 0)
    assert (stats.spooled, stats.dropped, stats.failed, stats.rejected) == (0, 0, 0, 0)
    assert spool_files(instance.locations.home or Path()) == []


def test_register_takes_a_manifest_object_a_dict_or_a_path(instance: Instance, home: Path) -> None:
    tiny = TelemetryClient.register(manifest_obj(), home=home)
    photo = TelemetryClient.register(load_manifest(PHOTOEDIT), home=home)
    notes = TelemetryClient.register(str(ROOT / "resources" / "manifests" / "notes-sync.json"), home=home)
    assert [c.app_id for c in (tiny, photo, notes)] == ["org.example.tiny", APP, "net.notesync.desktop"]
    assert {app.app_id for app in broker_of(instance).apps()} == {c.app_id for c in (tiny, photo, notes)}
    for c in (tiny, photo, notes):
        c.close()


def test_register_finds_the_instance_through_the_environment(
    instance: Instance, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEMETRY_TRAY_HOME", str(home))
    c = TelemetryClient.register(PHOTOEDIT, flush_interval=QUIET)
    broker_of(instance).set_consent(APP, True)
    c.report(crop())
    assert c.flush()
    assert stored(broker_of(instance)) == 1
    c.close()


def test_register_with_no_instance_raises_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotRunning) as caught:
        TelemetryClient.register(PHOTOEDIT, home=tmp_path / "nobody")
    assert isinstance(caught.value, TrayError)
    assert caught.value.title == "Telemetry Tray is not running"
    assert "nobody" in caught.value.message
    assert "run --headless" in caught.value.message


def test_register_with_nothing_listening_raises_not_running(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(NotRunning, match=f"127.0.0.1:{port}"):
        TelemetryClient.register(PHOTOEDIT, home=tmp_path, url=f"http://127.0.0.1:{port}")


def test_register_refuses_an_invalid_manifest_naming_the_key(instance: Instance, home: Path) -> None:
    bad = manifest_obj()
    bad["fields"][1]["type"] = "int"
    with pytest.raises(ManifestError) as caught:
        TelemetryClient.register(bad, home=home)
    assert isinstance(caught.value, TrayError)
    assert caught.value.key == "fields[1] (n).type"
    assert "fields[1] (n).type" in caught.value.message
    with pytest.raises(ManifestError, match="'vendor'"):
        TelemetryClient.register({k: v for k, v in manifest_obj().items() if k != "vendor"}, home=home)
    with pytest.raises(ManifestError, match="cannot read"):
        TelemetryClient.register(home / "missing.toml", home=home)
    assert broker_of(instance).apps() == []


def test_register_reports_the_instance_refusal(instance: Instance, home: Path) -> None:
    first = TelemetryClient.register(PHOTOEDIT, home=home)
    with pytest.raises(RegistrationRefused) as caught:
        TelemetryClient.register(PHOTOEDIT, home=home)  # someone else's app_id, without its token
    assert caught.value.status == 409
    assert caught.value.code == "conflict"
    assert "already registered" in caught.value.message
    again = TelemetryClient.register(PHOTOEDIT, home=home, token=first.token)  # the app itself
    assert again.token == first.token
    first.close()
    again.close()


def test_constructor_refuses_a_missing_token_or_app_id(home: Path) -> None:
    with pytest.raises(ClientError):
        TelemetryClient(APP, "  ", home=home)
    with pytest.raises(ClientError):
        TelemetryClient("../etc", "token", home=home)
    with pytest.raises(ClientError):
        TelemetryClient(APP, "token", home=home, url="https://example.org")


# -- reporting -------------------------------------------------------------------------


def test_report_never_raises_on_junk(client: TelemetryClient, instance: Instance) -> None:
    class Weird:
        pass

    circular: dict[str, object] = {"event": "crop"}
    circular["self"] = circular
    junk: list[object] = [
        None,
        "crop",
        42,
        [crop()],
        {1, 2},
        Weird(),
        {"event": {1, 2}},  # a set inside
        {"event": "crop", "duration_ms": float("nan")},  # not JSON
        {"event": "\ud800"},  # a lone surrogate is not UTF-8
        {("a", "b"): 1},  # a key JSON cannot have
        circular,
    ]
    for item in junk:
        client.report(item)
    client.report(crop(1))
    client.report({"event": "no-such-event"})  # JSON, but the instance rejects it
    assert client.flush()
    stats = client.stats
    assert stats.failed == len(junk)
    assert stats.sent == 1
    assert stats.rejected == 1
    assert stats.queued == len(junk) + 2
    assert stored(broker_of(instance)) == 1


def test_a_batch_the_instance_rejects_entirely_is_not_retried(client: TelemetryClient, instance: Instance) -> None:
    for _ in range(3):
        client.report({"event": "nonsense"})
    assert client.flush()
    assert client.stats.rejected == 3
    assert client.stats.spooled == 0
    assert client.stats.last_error is not None and "rejected" in client.stats.last_error
    assert stored(broker_of(instance)) == 0


def test_full_queue_drops_the_oldest_and_counts(instance: Instance, home: Path) -> None:
    c = TelemetryClient.register(PHOTOEDIT, home=home, max_queue=100, flush_interval=QUIET)
    broker = broker_of(instance)
    broker.set_consent(APP, True)
    for i in range(250):
        c.report(crop(i))
    assert (c.stats.dropped, c.stats.pending) == (150, 100)
    assert c.flush()
    assert (c.stats.sent, c.stats.dropped, c.stats.queued) == (100, 150, 250)
    (batch,) = broker.pending()
    payload = broker.view(batch.batch_id).payload
    assert payload is not None
    assert sorted(r["duration_ms"] for r in payload.obj()["reports"]) == list(range(150, 250))
    c.close()


def test_report_is_cheap(client: TelemetryClient) -> None:
    """The benchmark (python -m bench sdk.report) measures it properly; this is a
    loose bound, with the background thread really sending meanwhile."""
    calls = 100_000
    report = crop()
    started = time.perf_counter()
    for _ in range(calls):
        client.report(report)
    mean_us = (time.perf_counter() - started) / calls * 1e6
    assert mean_us < 20, f"report() took {mean_us:.2f} µs on average"
    assert client.flush(timeout=60)
    stats = client.stats
    assert stats.queued == calls
    assert stats.sent + stats.dropped == calls
    assert stats.sent > 0


def test_stats_add_up_while_reports_arrive_from_many_threads(client: TelemetryClient) -> None:
    import threading

    def hammer() -> None:
        for i in range(5000):
            client.report(crop(i))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.flush(timeout=60)
    stats = client.stats
    assert stats.queued == 20_000
    assert stats.sent + stats.dropped == 20_000
    assert stats.pending == 0


# -- closing ---------------------------------------------------------------------------


def test_close_flushes_and_is_idempotent(client: TelemetryClient, instance: Instance) -> None:
    for i in range(10):
        client.report(crop(i))
    assert client.close()
    assert stored(broker_of(instance)) == 10
    assert client.close()
    assert client.closed
    client.report(crop())  # after close: dropped, counted, not raised
    assert client.flush()
    assert (client.stats.sent, client.stats.dropped, client.stats.queued) == (10, 1, 11)


def test_a_client_dropped_without_close_still_sends(client: TelemetryClient, instance: Instance, home: Path) -> None:
    other = TelemetryClient(APP, client.token, home=home, flush_interval=QUIET)
    for i in range(7):
        other.report(crop(i))
    del other
    gc.collect()
    assert wait_for(lambda: stored(broker_of(instance)) == 7)


def test_reports_are_not_lost_when_the_app_exits_without_close(tmp_path: Path) -> None:
    """A real instance process, a real app process that exits right after reporting."""
    home = tmp_path / "home"
    server = Proc(home)
    env = server.env
    try:
        assert server.url.startswith("http://127.0.0.1:"), server.output()
        app = textwrap.dedent(
            f"""
            from tray_app.client import TelemetryClient
            client = TelemetryClient.register({str(PHOTOEDIT)!r}, flush_interval=3600)
            print(client.token, flush=True)
            for i in range(321):
                client.report({{"event": "export", "duration_ms": i}})
            # no flush, no close: the interpreter's exit must send them
            """
        )
        ran = subprocess.run(
            [sys.executable, "-c", app], env=env, cwd=ROOT, capture_output=True, text=True, check=False, timeout=60
        )
        assert ran.returncode == 0, ran.stderr
        consent = server.cli("consent", APP, "allow")
        assert consent.returncode == 0, consent.stderr
        pending = server.cli("pending", "--json")
        assert pending.returncode == 0, pending.stderr
        assert [b["reports"] for b in json.loads(pending.stdout) if b["app_id"] == APP] == [321]
        assert spool_files(home) == []
    finally:
        returncode = server.stop(timeout=30)
    assert returncode == 0
    assert not Locations.under(home).endpoint_file.exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_a_forked_child_sends_its_own_reports_and_not_the_parents(instance: Instance, home: Path) -> None:
    token = TelemetryClient.register(PHOTOEDIT, home=home).token
    broker_of(instance).set_consent(APP, True)
    script = textwrap.dedent(
        f"""
        import os, sys
        from tray_app.client import TelemetryClient
        client = TelemetryClient({APP!r}, {token!r}, flush_interval=3600)
        for i in range(3):
            client.report({{"event": "open", "duration_ms": i}})  # queued in the parent before fork
        pid = os.fork()
        if pid == 0:
            for i in range(4):
                client.report({{"event": "crop", "duration_ms": i}})
            ok = client.flush(timeout=30)
            sys.exit(0 if ok and client.stats.sent == 4 else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert client.flush(timeout=30) and client.stats.sent == 3, client.stats
        """
    )
    env = {**os.environ, "TELEMETRY_TRAY_HOME": str(home)}
    ran = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, check=False, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert stored(broker_of(instance)) == 7  # 3 + 4: nothing sent twice


# -- the spool -------------------------------------------------------------------------


def test_with_no_instance_reports_are_spooled_then_taken_in(home: Path) -> None:
    token = registered_token(home)
    c = TelemetryClient(APP, token, home=home, flush_interval=QUIET)
    for i in range(3):
        c.report(crop(i))
    assert c.flush()
    assert len(spool_files(home)) == 1
    for i in range(5):
        c.report(crop(i))
    assert c.flush()
    files = spool_files(home)
    assert len(files) == 2  # one file per flush
    written = json.loads(files[0].read_text())
    assert written["app_id"] == APP
    assert "token" not in written and token not in files[0].read_text()
    assert [r["duration_ms"] for r in written["reports"]] == [0, 1, 2]
    assert (c.stats.spooled, c.stats.sent, c.stats.pending) == (8, 0, 0)
    assert c.flush()
    assert len(spool_files(home)) == 2  # nothing queued: no empty file

    inst = Instance(Locations.under(home))
    inst.start()  # takes the spool in before it serves
    try:
        assert stored(broker_of(inst)) == 8
        assert spool_files(home) == []
        # The same client finds the instance (a new port) and sends over HTTP again.
        c.report(crop(99))
        assert c.flush()
        assert (c.stats.sent, c.stats.spooled) == (1, 8)
        assert stored(broker_of(inst)) == 9
    finally:
        c.close()
        inst.stop()


def test_with_no_instance_small_amounts_wait_before_spooling(home: Path) -> None:
    token = registered_token(home)
    c = TelemetryClient(APP, token, home=home, flush_interval=0.05, spool_interval=3600)
    c.report(crop())
    time.sleep(0.3)  # several background rounds: the report waits in memory, no file per round
    assert spool_files(home) == []
    assert c.stats.pending == 1
    for i in range(500):  # a full batch goes to the spool at once, a file per request it would have been
        c.report(crop(i))
    assert wait_for(lambda: c.stats.spooled == 501)
    assert len(spool_files(home)) == -(-501 // BATCH_SIZE)
    c.close()


def test_a_full_spool_drops_the_oldest_and_counts(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = registered_token(home)
    monkeypatch.setattr(spool_module, "MAX_FILES_PER_APP", 3)
    c = TelemetryClient(APP, token, home=home, flush_interval=QUIET)
    for flush in range(5):
        for i in range(2):
            c.report(crop(flush * 10 + i))
        assert c.flush()
    files = spool_files(home)
    assert len(files) == 3
    assert [json.loads(f.read_text())["reports"][0]["duration_ms"] for f in files] == [20, 30, 40]
    assert Spool(Locations.under(home).spool).dropped(APP) == 4
    assert (c.stats.spooled, c.stats.dropped) == (10, 4)
    assert c.stats.last_error is not None and "spool is full" in c.stats.last_error
    c.close()


def test_a_wrong_token_is_not_spooled_forever(instance: Instance, home: Path) -> None:
    TelemetryClient.register(PHOTOEDIT, home=home).close()
    broker_of(instance).set_consent(APP, True)
    c = TelemetryClient(APP, "not-the-token", home=home, flush_interval=QUIET)
    for i in range(4):
        c.report(crop(i))
    assert c.flush()
    for i in range(3):
        c.report(crop(i))
    assert c.flush()
    stats = c.stats
    assert (stats.failed, stats.spooled, stats.sent) == (7, 0, 0)
    assert stats.last_error is not None and "token" in stats.last_error
    assert spool_files(home) == []
    assert stored(broker_of(instance)) == 0
    c.close()


def test_a_blocked_app_is_not_spooled(client: TelemetryClient, instance: Instance, home: Path) -> None:
    broker_of(instance).set_consent(APP, False)
    client.report(crop())
    assert client.flush()
    assert (client.stats.failed, client.stats.spooled) == (1, 0)
    assert client.stats.last_error is not None and "403" in client.stats.last_error
    assert spool_files(home) == []
    broker_of(instance).set_consent(APP, True)  # the person changes their mind
    client.report(crop())
    assert client.flush()
    assert client.stats.sent == 1


def test_explicit_url_and_a_vanished_instance(client: TelemetryClient, instance: Instance, home: Path) -> None:
    assert instance.endpoint is not None
    url = instance.endpoint.url
    c = TelemetryClient(APP, client.token, home=home, url=url, flush_interval=QUIET)
    c.report(crop())
    assert c.flush()
    assert c.stats.sent == 1
    instance.stop()  # the url now refuses connections: the batch goes to the spool
    c.report(crop())
    assert c.flush()
    assert c.stats.spooled == 1
    assert len(spool_files(home)) == 1
    c.close()


# -- the house rules -------------------------------------------------------------------


def test_the_sdk_imports_without_pyside6() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_QT, "tray_app.client"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok 1"
