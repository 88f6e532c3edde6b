"""The running instance as a real process: start, one per home, signals, kill -9."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.builders import PHOTOEDIT, integrity_ok, tiny
from tests.support.processes import Proc, post
from tray_app import __version__
from tray_app.core import Broker, Locations
from tray_app.core.schedules import Housekeeper

APP = "org.example.photoedit"
GOOD = {"event": "crop", "app_version": "3.1.4"}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Proc]:
    proc = Proc(tmp_path / "home")
    yield proc
    if proc.proc.poll() is None:
        proc.proc.kill()
        proc.proc.wait()


def test_endpoint_file_and_clean_exit(running: Proc) -> None:
    endpoint = running.endpoint()
    assert endpoint == {"url": running.url, "pid": running.proc.pid, "version": __version__}
    assert oct((running.home / "endpoint.json").stat().st_mode & 0o777) == "0o600"
    with urllib.request.urlopen(running.url + "/v1/health", timeout=5) as response:
        assert json.loads(response.read()) == {"status": "ok", "version": __version__}
    status = json.loads(running.cli("status", "--json").stdout)
    assert status["running"] is True and status["url"] == running.url
    assert running.stop(signal.SIGTERM) == 0
    assert not (running.home / "endpoint.json").exists()


def test_sigint_exits_cleanly_too(running: Proc) -> None:
    assert running.stop(signal.SIGINT) == 0
    assert not (running.home / "endpoint.json").exists()


def test_one_instance_per_home(running: Proc, tmp_path: Path) -> None:
    second = running.cli("run", "--headless")
    assert second.returncode == 1
    assert f"already running for this home (pid {running.proc.pid})" in second.stderr
    assert running.endpoint()["pid"] == running.proc.pid  # the first one's file is untouched
    other = Proc(tmp_path / "other-home")  # another home is another instance
    assert other.url != running.url
    other.stop()


def test_it_binds_loopback_only(running: Proc) -> None:
    port = int(running.url.rsplit(":", 1)[1])
    assert running.url.startswith("http://127.0.0.1:")
    # /proc/net/tcp lists listening sockets as hex "ADDR:PORT"; 0100007F is 127.0.0.1.
    listening = [
        line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:] if line.split()[3] == "0A"
    ]
    ours = [addr for addr in listening if int(addr.split(":")[1], 16) == port]
    assert ours == ["0100007F:" + f"{port:04X}"]


def test_the_port_can_be_fixed(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = Proc(tmp_path / "home", port)
    assert proc.url == f"http://127.0.0.1:{port}"
    taken = proc.cli("run", "--headless")
    assert taken.returncode == 1
    proc.stop()
    env = {**os.environ, "TELEMETRY_TRAY_HOME": str(tmp_path / "h2"), "TELEMETRY_TRAY_PORT": "http"}
    bad = subprocess.run(
        [sys.executable, "-m", "tray_app", "run", "--headless"], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "TELEMETRY_TRAY_PORT" in bad.stderr and "Traceback" not in bad.stderr


def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**os.environ, "TELEMETRY_TRAY_HOME": str(tmp_path / "h"), "TELEMETRY_TRAY_PORT": str(port)}
        result = subprocess.run(
            [sys.executable, "-m", "tray_app", "run", "--headless"], env=env, capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 1 and "TELEMETRY_TRAY_PORT" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "h" / "endpoint.json").exists()


def test_kill_9_right_after_202_loses_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = Proc(home)
    token = json.loads(proc.cli("register", str(PHOTOEDIT), "--json").stdout)["token"]
    accepted = 0
    for round_ in range(5):
        status, body = post(proc.url, "/v1/reports", {"reports": [GOOD] * (round_ + 1) * 10}, token)
        assert status == 202
        accepted += body["accepted"]
        proc.proc.kill()  # SIGKILL the moment the answer is in
        proc.proc.wait()
        proc = Proc(home)  # a stale endpoint.json and lock do not stop a restart
    proc.stop()
    broker = Broker.open(Locations.under(home))
    assert sum(b.reports for b in broker.pending()) == accepted == 150
    assert integrity_ok(broker.store.path) and broker.verify_history().ok


@pytest.mark.slow
def test_the_cli_and_the_instance_share_the_database(running: Proc) -> None:
    token = json.loads(running.cli("register", str(PHOTOEDIT), "--json").stdout)["token"]
    assert running.cli("consent", APP, "allow").returncode == 0
    errors: list[object] = []

    def send() -> None:
        for _ in range(30):
            status, body = post(running.url, "/v1/reports", {"reports": [GOOD] * 20}, token)
            if status != 202:
                errors.append(body)

    senders = [threading.Thread(target=send) for _ in range(3)]
    for t in senders:
        t.start()
    cli_failures = []
    for _ in range(6):
        for args in (["submit", APP], ["close-batches"], ["pending", "--json"]):
            result = running.cli(*args, input=json.dumps(GOOD) if args[0] == "submit" else None)
            if result.returncode != 0:
                cli_failures.append(result.stderr)
        batches = json.loads(running.cli("pending", "--json").stdout)
        for batch in batches:
            if batch["status"] == "pending":
                result = running.cli("approve", batch["batch_id"])
                if result.returncode != 0 and "already" not in result.stderr:
                    cli_failures.append(result.stderr)
    for t in senders:
        t.join()
    assert errors == [] and cli_failures == []
    broker = Broker.open(Locations.under(running.home))
    stored = sum(b.reports for b in broker.pending())
    approved = sum(r.detail["reports"] for r in broker.history() if r.action == "approved")
    assert stored + approved == 3 * 30 * 20 + 6


def test_housekeeping_closes_windows_on_time(tmp_path: Path) -> None:
    # A clock 1.5 s before the end of an hour: the hourly window closes by itself.
    target = datetime(2026, 11, 24, 10, 59, 58, 500000, tzinfo=UTC)
    offset = target - datetime.now(UTC)
    broker = Broker.open(Locations.under(tmp_path / "home"), lambda: datetime.now(UTC) + offset)
    m = tiny(cadence="hourly")
    broker.register(m)
    broker.set_consent(m.app_id, True)
    keeper = Housekeeper(broker)
    keeper.start()
    broker.ingest(m.app_id, [{"event": "e"}])
    keeper.wake()
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and broker.pending()[0].status == "open":
        time.sleep(0.1)
    keeper.stop()
    assert broker.pending()[0].status == "pending"
    rounds = keeper.rounds
    assert 1 <= rounds <= 3  # it slept until the window ended; it did not poll


def test_housekeeping_sleeps_until_the_next_window(tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 10, 20, tzinfo=UTC)
    broker = Broker.open(Locations.under(tmp_path / "home"), lambda: now)
    keeper = Housekeeper(broker)
    assert keeper.next_due(now) == now + timedelta(hours=1)  # nothing open: retention only
    m = tiny(cadence="hourly")
    broker.register(m)
    broker.ingest(m.app_id, [{"event": "e"}])
    assert keeper.next_due(now) == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)


def test_set_aside_spool_files_expire_with_the_retention_period(tmp_path: Path) -> None:
    import os as _os

    from tray_app.core.storage.spool import Spool

    broker = Broker.open(Locations.under(tmp_path / "home"))
    spool = Spool(Locations.under(tmp_path / "home").spool)
    spool.write("org.example.tiny", "0" * 64, [{"event": "e"}])  # no such app: set aside
    Housekeeper(broker, spool).run_once()
    rejected = list((spool.root / "rejected").iterdir())
    assert len(rejected) == 1
    old = time.time() - 31 * 86400
    _os.utime(rejected[0], (old, old))
    Housekeeper(broker, spool).run_once()
    assert list((spool.root / "rejected").iterdir()) == []
