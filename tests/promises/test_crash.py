"""Crash tests: real processes killed with SIGKILL at random points, again and again.

Five moments are attacked: ingest (HTTP requests to a running instance), batch closing
(``close-batches``), approval (``approve``), delivery (``deliver`` and the instance's
delivery loop, against a real vendor on 127.0.0.1) and migration (a database of an older
schema opened, and killed, mid-upgrade). After every kill the program is restarted and the
home is checked against DESIGN.md's promise ("Kill the process at any point"):

- every report that was answered 202 (or whose ``submit`` exited 0) is stored exactly once,
  as a row of an undecided batch or inside the approved payload of a decided one; a report
  whose answer the kill cut off is stored at most once; nothing else is stored;
- no batch reached the vendor without a recorded approval, or with other bytes than the
  approved ones; a resend after a crash carries the same Idempotency-Key and bytes;
- ``PRAGMA integrity_check`` is ok and the receipts' hash chain holds.

Kill delays are random but seeded: the seed is printed (pytest shows it for a failing test)
and ``CRASH_SEED=N`` replays a run. Each scenario prints a one-line summary (``pytest -s``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import ROOT, db_at_version, manifest_obj
from tests.support.fake_vendor import Vendor, vendor
from tests.support.processes import Proc, Run, post, record_figure, tray_cli, tray_env
from tray_app.core import Broker, Locations
from tray_app.core.rules.consent import UNDECIDED
from tray_app.core.storage.migrations import LATEST

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(2**31))
KILLS = 8  # kills per scenario
DECIDED_WITH_PAYLOAD = ("approved", "delivered", "failed")


def _rng(scenario: str) -> random.Random:
    print(f"crash[{scenario}] seed {SEED} (replay with CRASH_SEED={SEED})")
    return random.Random(f"{SEED}:{scenario}")


@dataclass
class Ledger:
    """What the clients were told, and what the kills did, for one scenario."""

    scenario: str
    accepted: set[str] = field(default_factory=set)  # answered 202 / submit exited 0: must be stored once
    unanswered: set[str] = field(default_factory=set)  # the kill cut the answer off: stored at most once
    kills: int = 0  # the process was still running when it was killed
    finished: int = 0  # the process finished before its kill was due
    checks: int = 0
    sent: int = 0
    resent: int = 0
    batches: int = 0
    resent_requests: int = 0  # report requests cut off by a kill and sent again with their key

    def report(self, stored_unanswered: int, extra: str = "") -> None:
        """Print the summary and record the figures (reached only when every check passed)."""
        print(self.summary(stored_unanswered) + extra)
        for name, value in (
            ("kills", self.kills),
            ("accepted", len(self.accepted)),
            ("batches", self.batches),
            ("sent", self.sent),
            ("resent", self.resent),
            ("checks", self.checks),
            ("resent_requests", self.resent_requests),
        ):
            record_figure(f"crash.{self.scenario}.{name}", value)

    def summary(self, stored_unanswered: int) -> str:
        return (
            f"crash[{self.scenario}] seed={SEED}: {self.kills} kills mid-work ({self.finished} runs finished first), "
            f"{self.checks} checks; reports accepted {len(self.accepted)}, lost 0, duplicated 0, "
            f"unanswered {len(self.unanswered)} (stored {stored_unanswered}), "
            f"cut-off requests sent again {self.resent_requests}; batches {self.batches}, "
            f"sent {self.sent}, resent {self.resent} (same key and bytes)"
        )


def _spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tray_app", *args], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _kill_after(proc: subprocess.Popen[bytes], delay: float, ledger: Ledger) -> bool:
    """SIGKILL ``proc`` ``delay`` seconds from now unless it finished; True if the kill landed."""
    try:
        proc.wait(delay)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        ledger.kills += 1
        return True
    ledger.finished += 1
    return False


def _rounds(ledger: Ledger) -> Iterator[int]:
    """Round numbers until ``KILLS`` kills have landed mid-work (a run may finish before
    its kill is due), at most ``3 * KILLS`` rounds."""
    round_ = 0
    while ledger.kills < KILLS and round_ < 3 * KILLS:
        yield round_
        round_ += 1
    assert ledger.kills >= KILLS // 2, f"only {ledger.kills} of {round_} kills landed mid-work (seed {SEED})"


def _reports(prefix: str, start: int, count: int) -> list[dict[str, Any]]:
    return [{"event": f"{prefix}{i}", "n": i} for i in range(start, start + count)]


def _events(reports: list[dict[str, Any]]) -> set[str]:
    return {str(r["event"]) for r in reports}


def _register(tt: Run, tmp_path: Path, app_id: str, endpoint: str, consent: bool = True, policy: str = "ask") -> str:
    path = tmp_path / f"{app_id}.json"
    path.write_text(json.dumps(manifest_obj(app_id=app_id, endpoint=endpoint)))
    token = str(json.loads(tt("register", str(path), "--json").stdout)["token"])
    if consent:
        tt("consent", app_id, "allow")
    if policy != "ask":
        tt("policy", app_id, policy)
    return token


def _submit(tt: Run, ledger: Ledger, app_id: str, reports: list[dict[str, Any]]) -> None:
    out = json.loads(tt("submit", app_id, "--json", input=json.dumps({"reports": reports})).stdout)
    assert out["accepted"] == len(reports), out
    ledger.accepted |= _events(reports)


def _check(
    home: Path, ledger: Ledger, v: Vendor | None = None, *, all_delivered: bool = False, decisions: bool = True
) -> int:
    """Check the promises on ``home`` as the last process left it; returns how many of the
    unanswered reports are stored. ``decisions=False`` for batches an old release approved
    (seeded without receipts)."""
    ledger.checks += 1
    where = f"[{ledger.scenario}, seed {SEED}, check {ledger.checks}]"
    db = sqlite3.connect(Locations.under(home).database)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", where
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST, where
        status = dict(db.execute("SELECT batch_id, status FROM batches").fetchall())
        assert "discarded" not in status.values(), f"{where} nothing here discards: reports were dropped"
        found: Counter[str] = Counter()
        for batch_id, body in db.execute("SELECT batch_id, body FROM reports"):
            assert status[batch_id] in UNDECIDED, f"{where} a decided batch {batch_id} still holds report rows"
            found[json.loads(body)["event"]] += 1
        approved: dict[str, bytes] = {}
        receipts: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for batch_id, action, detail in db.execute("SELECT batch_id, action, detail FROM receipts"):
            receipts[(batch_id, action)].append(json.loads(detail))
        deliveries = {row[0] for row in db.execute("SELECT batch_id FROM deliveries")}
        rows = db.execute(
            "SELECT batch_id, status, payload, payload_sha256 FROM batches WHERE status IN (?, ?, ?)",
            DECIDED_WITH_PAYLOAD,
        ).fetchall()
        for batch_id, state, payload, sha in rows:
            assert payload is not None and hashlib.sha256(payload).hexdigest() == sha, f"{where} {batch_id}"
            obj = json.loads(payload)
            assert obj["batch_id"] == batch_id
            found.update(r["event"] for r in obj["reports"])
            if decisions:
                (decision,) = receipts[(batch_id, "approved")]  # one recorded decision per decided batch
                assert decision["payload_sha256"] == sha and decision["reports"] == len(obj["reports"]), where
            assert batch_id in deliveries, f"{where} approved batch {batch_id} has no delivery: it would never go"
            assert len(receipts[(batch_id, "delivered")]) == (state == "delivered"), f"{where} {batch_id} {state}"
            approved[batch_id] = bytes(payload)
        ledger.batches = len(status)
    finally:
        db.close()
    lost = ledger.accepted - found.keys()
    duplicated = sorted(e for e, c in found.items() if c > 1)
    phantom = found.keys() - ledger.accepted - ledger.unanswered
    assert not lost, f"{where} {len(lost)} accepted report(s) lost, e.g. {sorted(lost)[:5]}"
    assert not duplicated, f"{where} {len(duplicated)} report(s) stored twice, e.g. {duplicated[:5]}"
    assert not phantom, f"{where} reports nobody sent: {sorted(phantom)[:5]}"
    broker = Broker.open(Locations.under(home))
    try:
        chain = broker.verify_history()
        assert chain.ok, f"{where} {chain.problem}"
    finally:
        broker.close()
    if v is not None:
        sent: dict[str, list[bytes]] = defaultdict(list)
        for received in list(v.received):
            sent[received.headers["idempotency-key"]].append(received.body)
        for key, bodies in sent.items():
            assert key in approved, f"{where} batch {key} reached the vendor without an approval"
            assert all(b == approved[key] for b in bodies), f"{where} batch {key} sent with other bytes"
        ledger.sent = len(sent)
        ledger.resent = sum(len(b) - 1 for b in sent.values())
        if all_delivered:
            assert set(approved) == set(sent), f"{where} approved but never sent: {set(approved) - set(sent)}"
            assert set(status[b] for b in approved) == {"delivered"}, where
    return len(found.keys() & ledger.unanswered)


# -- ingest ------------------------------------------------------------------------------


def test_kill_9_during_ingest(tmp_path: Path) -> None:
    rng = _rng("ingest")
    home = tmp_path / "home"
    tt = tray_cli(tray_env(home))
    token = _register(tt, tmp_path, "org.example.tiny", "https://t.example.org/v1")
    ledger = Ledger("ingest")
    lock = threading.Lock()
    numbers = [0]
    errors: list[object] = []
    stored_unanswered = 0

    cut_off: list[tuple[str, list[dict[str, Any]]]] = []

    def client(url: str, seed: int) -> None:
        local = random.Random(seed)
        while True:
            size = local.choice((1, 20, 200, 1000))
            with lock:
                start, numbers[0] = numbers[0], numbers[0] + size
            reports = _reports("i", start, size)
            key = f"k{seed}-{start}"
            try:
                status, body = post(url, "/v1/reports", {"reports": reports}, token, timeout=60, key=key)
            except (OSError, http.client.HTTPException, ValueError):
                with lock:  # cut off by the kill: it may or may not have been stored; sent again below
                    cut_off.append((key, reports))
                return
            with lock:
                if status != 202 or body["accepted"] != size:
                    errors.append((status, body))
                    return
                ledger.accepted |= _events(reports)
            answered.set()

    answered = threading.Event()
    instance = Proc(home)
    try:
        for round_ in range(KILLS):
            clients = [threading.Thread(target=client, args=(instance.url, rng.randrange(2**31))) for _ in range(2)]
            answered.clear()
            for t in clients:
                t.start()
            assert answered.wait(60), f"round {round_}: no request was answered within 60 s"
            time.sleep(rng.uniform(0.0, 0.5))  # the random moment of the kill
            instance.kill()
            ledger.kills += 1
            for t in clients:
                t.join(60)
            assert errors == [], errors
            instance = Proc(home)  # the restart, over the dead instance's lock and endpoint.json
            # What the kill cut off is sent again with its Idempotency-Key, as the client SDK
            # does: stored exactly once, whether or not the first try was.
            for key, reports in cut_off:
                status, body = post(instance.url, "/v1/reports", {"reports": reports}, token, timeout=60, key=key)
                assert (status, body["accepted"]) == (202, len(reports)), (key, status, body)
                ledger.accepted |= _events(reports)
                ledger.resent_requests += 1
            cut_off.clear()
            stored_unanswered = _check(home, ledger)
        instance.stop()
    finally:
        if instance.proc.poll() is None:
            instance.kill()
    stored_unanswered = _check(home, ledger)
    ledger.report(stored_unanswered)


# -- batch closing -------------------------------------------------------------------------


def test_kill_9_while_closing_batches(tmp_path: Path) -> None:
    rng = _rng("close-batches")
    home = tmp_path / "home"
    env = tray_env(home)
    tt = tray_cli(env)
    apps = ["org.example.ask", "org.example.auto", "org.example.new"]
    _register(tt, tmp_path, apps[0], "https://t.example.org/v1")  # closes to pending
    _register(tt, tmp_path, apps[1], "https://t.example.org/v1", policy="approve")  # approved (rendered) on close
    _register(tt, tmp_path, apps[2], "https://t.example.org/v1", consent=False)  # awaiting consent: held
    ledger = Ledger("close-batches")
    full = 0.0
    next_number = 0
    for round_ in _rounds(ledger):
        for app_id in apps:
            size = rng.choice((1, 500, 4000))
            _submit(tt, ledger, app_id, _reports(f"{app_id[12:]}-", next_number, size))
            next_number += size
        closer = _spawn(env, "close-batches")
        if round_ == 0:  # one run to its end: how long a close takes on this machine
            started = time.monotonic()
            assert closer.wait(120) == 0
            full = time.monotonic() - started
            continue
        _kill_after(closer, rng.uniform(0.02, full), ledger)
        _check(home, ledger)
        tt("close-batches")  # the restart: closes whatever the killed run left open
        _check(home, ledger)
    statuses = Counter(b["status"] for b in json.loads(tt("pending", "--json").stdout))
    assert set(statuses) <= {"pending", "held"}
    ledger.report(0)


# -- approval ------------------------------------------------------------------------------


def test_kill_9_while_approving(tmp_path: Path) -> None:
    rng = _rng("approve")
    home = tmp_path / "home"
    env = tray_env(home)
    tt = tray_cli(env)
    app_id = "org.example.tiny"
    _register(tt, tmp_path, app_id, "https://t.example.org/v1")
    ledger = Ledger("approve")
    full = 0.0
    next_number = 0
    for round_ in _rounds(ledger):
        size = rng.choice((1, 2000, 8000))
        _submit(tt, ledger, app_id, _reports("a", next_number, size))
        next_number += size
        (closed,) = json.loads(tt("close-batches", "--json").stdout)
        batch = closed["batch_id"]
        options = rng.choice(([], ["--exclude", "n"], ["--coarsen", "n=bucket"]))
        approver = _spawn(env, "approve", batch, *options)
        if round_ == 0:
            started = time.monotonic()
            assert approver.wait(120) == 0
            full = time.monotonic() - started
            continue
        _kill_after(approver, rng.uniform(0.02, full), ledger)
        _check(home, ledger)
        # The restart: the batch is either still pending (approve it again) or approved once.
        state = json.loads(tt("show", batch, "--json").stdout)["status"]
        assert state in ("pending", "approved"), state
        again = tt("approve", batch, *options, code=None)
        assert again.returncode == (0 if state == "pending" else 2), again.stderr
        _check(home, ledger)
    ledger.report(0)


# -- delivery ------------------------------------------------------------------------------


def test_kill_9_while_delivering(tmp_path: Path) -> None:
    rng = _rng("deliver")
    home = tmp_path / "home"
    # A short send timeout keeps the lease of a killed sender short (2 x 4 x 0.5 s + 10 s).
    extra = {"TELEMETRY_TRAY_SEND_TIMEOUT": "0.5"}
    env = tray_env(home, **extra)
    tt = tray_cli(env)
    # The vendor answers after a random while, so some kills land while a send is on the wire.
    script: list[Any] = [("slow", round(rng.uniform(0.0, 0.25), 3), 200) for _ in range(300)] + [200]
    ledger = Ledger("deliver")
    next_number = 0
    with vendor(script) as v:
        apps = ["org.example.one", "org.example.two"]
        for app_id in apps:
            _register(tt, tmp_path, app_id, v.url, policy="approve")  # closing approves
        rounds = 0
        for round_ in _rounds(ledger):
            rounds += 1
            for app_id in apps:
                size = rng.choice((1, 300, 3000))
                _submit(tt, ledger, app_id, _reports(f"{app_id[12:]}-", next_number, size))
                next_number += size
            tt("close-batches")
            if round_ % 2 == 0:  # the deliver command
                _kill_after(_spawn(env, "deliver"), rng.uniform(0.05, 0.8), ledger)
            else:  # the running instance's delivery loop, which starts sending at once
                instance = Proc(home, extra_env=extra)
                time.sleep(rng.uniform(0.0, 0.6))  # the random moment of the kill
                instance.kill()
                ledger.kills += 1
            _check(home, ledger, v)
        # A final sender finishes the job once the dead senders' claims have run out.
        tt("deliver", "--wait", "90")
        _check(home, ledger, v, all_delivered=True)
    assert ledger.sent == 2 * rounds
    ledger.report(0)


# -- migration -----------------------------------------------------------------------------

_PENDING_BATCHES = 20
_REPORTS_EACH = 4000
_APPROVED_BATCHES = 60_000  # migration 2 gives each a delivery row: enough work to be killed in


def _schema_1_home(path: Path) -> tuple[set[str], str]:
    """A database as release 1 left it, with many reports and approved batches; returns
    the reports' events and the app's manifest body."""
    db_at_version(path, 1)
    manifest = manifest_obj()
    conn = sqlite3.connect(path)
    scope = json.dumps({"fields": ["event", "n"], "coarsen": {}, "mode": "records"})
    at = "2030-01-01T00:00:00Z"  # windows in the future: nothing expires or closes on a restart
    conn.execute(
        "INSERT INTO apps VALUES ('org.example.tiny','Tiny','Example','https://t.example.org/v1',1,'allowed',"
        "'ask',?,'h',?,?)",
        (scope, at, at),
    )
    conn.execute("INSERT INTO manifests VALUES ('org.example.tiny', 1, ?, ?)", (json.dumps(manifest), at))
    events = set()
    for b in range(_PENDING_BATCHES):
        batch_id = f"pending{b:04d}"
        conn.execute(
            "INSERT INTO batches (batch_id, app_id, manifest_version, window_start, window_end, status, created_at)"
            " VALUES (?, 'org.example.tiny', 1, ?, ?, 'pending', ?)",
            (batch_id, at, "2030-01-02T00:00:00Z", at),
        )
        reports = _reports(f"m{b}-", 0, _REPORTS_EACH)
        conn.executemany(
            "INSERT INTO reports (batch_id, received_at, body) VALUES (?, ?, ?)",
            ((batch_id, at, json.dumps(r)) for r in reports),
        )
        events |= _events(reports)
    payloads = [f'{{"batch_id":"old{i:06d}","reports":[]}}'.encode() for i in range(_APPROVED_BATCHES)]
    conn.executemany(
        "INSERT INTO batches (batch_id, app_id, manifest_version, window_start, window_end, status, created_at,"
        " decided_at, decided_by, scope, endpoint, payload, payload_sha256, payload_bytes)"
        " VALUES (?, 'org.example.tiny', 1, ?, ?, 'approved', ?, ?, 'person', ?, 'https://t.example.org/v1', ?, ?, ?)",
        (
            (f"old{i:06d}", at, at, at, at, scope, body, hashlib.sha256(body).hexdigest(), len(body))
            for i, body in enumerate(payloads)
        ),
    )
    conn.commit()
    conn.close()
    return events, json.dumps(manifest)


def _schema_state(db: Path, events: set[str], where: str) -> int:
    """Check a database that a killed migration left; returns its schema version."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", where
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert 1 <= version <= LATEST, where
        # Each migration whole or not at all: the tables match the version.
        assert ("deliveries" in tables) == (version >= 2), (where, version, tables)
        assert ("ingest_keys" in tables) == (version >= 3), (where, version, tables)
        if version >= 2:
            due = conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]
            assert due == _APPROVED_BATCHES, (where, due)
        stored = Counter(json.loads(body)["event"] for (body,) in conn.execute("SELECT body FROM reports"))
        assert stored.keys() == events and set(stored.values()) == {1}, where
        approved = conn.execute("SELECT count(*) FROM batches WHERE status = 'approved'").fetchone()[0]
        assert approved == _APPROVED_BATCHES, where
        return version
    finally:
        conn.close()


def _backups(db: Path) -> list[Path]:
    return sorted(p for p in db.parent.glob(db.name + ".v1.bak*") if not p.name.endswith("-journal"))


def test_kill_9_while_migrating(tmp_path: Path) -> None:
    rng = _rng("migrate")
    template = tmp_path / "schema-1.sqlite3"
    events, _ = _schema_1_home(template)
    ledger = Ledger("migrate")
    ledger.accepted = events
    full = 0.0
    phases: Counter[str] = Counter()  # where the kills landed
    for round_ in _rounds(ledger):
        home = tmp_path / f"home{round_}"
        db = Locations.under(home).database
        db.parent.mkdir(parents=True, mode=0o700)
        shutil.copyfile(template, db)
        env = tray_env(home)
        opener = _spawn(env, "pending", "--json")  # any command that opens the database migrates it
        where = f"[migrate, seed {SEED}, round {round_}]"
        if round_ == 0:
            started = time.monotonic()
            assert opener.wait(120) == 0
            full = time.monotonic() - started
        elif _kill_after(opener, rng.uniform(0.02, full), ledger):
            version = _schema_state(db, events, where)
            partial = list(db.parent.glob(f".{db.name}.v1.bak.partial*"))
            phases[
                "after the upgrade"
                if version == LATEST
                else "between upgrades"
                if version > 1
                else "mid-copy"
                if partial
                else "mid-upgrade"
                if _backups(db)
                else "before the copy"
            ] += 1
        # The restart finishes the upgrade and lists every pending batch whole.
        pending = json.loads(tray_cli(env)("pending", "--json").stdout)
        assert sorted(b["reports"] for b in pending) == [_REPORTS_EACH] * _PENDING_BATCHES, where
        assert _schema_state(db, events, where) == LATEST
        _check(home, ledger, decisions=False)
        # The copy taken before migrating is whole and at the old version, whatever was killed;
        # no part of a copy a kill cut short is left.
        copies = _backups(db)
        assert copies, f"{where} no backup taken before migrating"
        for copy in copies:
            assert _schema_state(copy, events, f"{where} {copy.name}") == 1
        assert not list(db.parent.glob(".*partial*")), where
    ledger.batches = _PENDING_BATCHES + _APPROVED_BATCHES
    ledger.report(0, "; kills landed " + ", ".join(f"{n} {phase}" for phase, n in sorted(phases.items())))
