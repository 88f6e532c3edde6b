"""End-to-end: the real command in a subprocess, on a temporary TELEMETRY_TRAY_HOME."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import NOTESYNC, PHOTOEDIT
from tests.support.processes import Run
from tray_app import __version__
from tray_app.cli import explain
from tray_app.core import Remedy, TrayError
from tray_app.core.rules.canonical_json import canonical_bytes
from tray_app.core.storage.migrations import LATEST

APP = "org.example.photoedit"


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


REPORTS = [
    {
        "event": "crop",
        "ts": "2026-11-24T10:11:12Z",
        "app_version": "3.1.4",
        "duration_ms": 120,
        "account_email": "a@b.c",
    },
    {
        "event": "export",
        "ts": "2026-11-24T11:00:00Z",
        "app_version": "3.2.0",
        "duration_ms": 900,
        "cursor": [1, 2],
    },
]


def test_the_whole_flow(tt: Run, tmp_path: Path) -> None:
    reg = _json(tt("register", str(PHOTOEDIT), "--json"))
    assert set(reg) == {"app_id", "token", "status"}
    assert reg["app_id"] == APP and reg["status"] == "awaiting_consent" and len(reg["token"]) >= 43
    assert _json(tt("apps", "--json")) == [
        {
            "app_id": APP,
            "name": "PhotoEdit",
            "vendor": "Example Corp",
            "endpoint": "https://telemetry.example.org/v1/batches",
            "status": "awaiting_consent",
            "policy": "ask",
        }
    ]
    tt("consent", APP, "allow")
    reports = tmp_path / "reports.json"
    reports.write_text(json.dumps({"reports": REPORTS}))
    submitted = _json(tt("submit", APP, str(reports), "--json"))
    assert submitted == {"accepted": 2, "rejected": [], "dropped_fields": ["cursor"]}
    more = _json(tt("submit", APP, "--json", input=json.dumps(REPORTS[0])))
    assert more["accepted"] == 1

    closed = _json(tt("close-batches", "--json"))
    assert [c["status"] for c in closed] == ["pending"]
    pending = _json(tt("pending", "--json"))
    assert len(pending) == 1
    assert set(pending[0]) == {"batch_id", "app_id", "status", "reports", "window_start", "window_end"}
    batch = pending[0]["batch_id"]
    assert pending[0]["reports"] == 3 and pending[0]["status"] == "pending"

    # The scope the person edits: shown with it, then approved with the same.
    scope = ("--exclude", "duration_ms", "--coarsen", "ts=day", "--coarsen", "app_version=minor")
    shown = _json(tt("show", batch, "--json", *scope))
    assert set(shown) == {
        "batch_id",
        "app_id",
        "status",
        "scope",
        "payload",
        "payload_sha256",
        "payload_bytes",
        "summary",
    }
    body = canonical_bytes(shown["payload"])
    assert shown["payload_sha256"] == hashlib.sha256(body).hexdigest()
    assert shown["payload_bytes"] == len(body)
    assert "duration_ms" not in shown["scope"]["fields"] and "account_email" not in shown["scope"]["fields"]
    assert shown["payload"]["reports"][0] == {
        "app_version": "3.1",
        "event": "crop",
        "ts": "2026-11-24T00:00:00Z",
    }
    assert b"a@b.c" not in body and b"cursor" not in body

    approved = _json(tt("approve", batch, "--json", *scope, "--sha256", shown["payload_sha256"]))
    assert approved["status"] == "approved"
    assert approved["payload_sha256"] == shown["payload_sha256"] and approved["payload"] == shown["payload"]
    assert _json(tt("pending", "--json")) == []

    history = _json(tt("history", "--json"))
    assert len(history) == 1
    assert set(history[0]) == {"at", "batch_id", "app_id", "action", "detail"}
    assert history[0]["action"] == "approved" and history[0]["batch_id"] == batch
    assert history[0]["detail"]["payload_sha256"] == shown["payload_sha256"]
    assert "intact" in tt("history", "--verify").stdout

    status = _json(tt("status", "--json"))
    assert status["apps"] == 1 and status["approved"] == 1 and status["running"] is False


def test_discard_and_aggregate(tt: Run) -> None:
    tt("register", str(PHOTOEDIT))
    tt("consent", APP, "allow")
    sent = [{"event": "crop"}] * 6 + [{"event": "open"}] * 5 + [{"event": "filter"}]
    tt("submit", APP, input=json.dumps({"reports": sent}))
    tt("close-batches")
    (batch,) = _json(tt("pending", "--json"))
    shown = _json(tt("show", batch["batch_id"], "--json", "--aggregate"))
    assert "reports" not in shown["payload"]
    # min_count 5: "filter" (1) folds into (other), which then takes "open" (5) to reach 5.
    assert shown["payload"]["aggregates"]["event"] == {"crop": 6, "(other)": 6}
    out = tt("discard", batch["batch_id"][:10]).stdout
    assert "nothing was sent" in out
    assert _json(tt("history", "--json"))[0]["action"] == "discarded"
    tt("approve", batch["batch_id"], code=2)


def test_policy_and_remember(tt: Run) -> None:
    tt("register", str(NOTESYNC))
    app = "net.notesync.desktop"
    tt("consent", app, "allow")
    tt("submit", app, input='{"sync_result": "ok", "hostname": "my-laptop", "sync_ms": 12.5}')
    tt("close-batches")
    (batch,) = _json(tt("pending", "--json"))
    tt("approve", batch["batch_id"], "--include", "hostname", "--remember")
    assert _json(tt("apps", "--json"))[0]["policy"] == "approve"
    tt("submit", app, input='{"sync_result": "conflict", "hostname": "my-laptop"}')
    tt("close-batches")
    assert _json(tt("pending", "--json")) == []
    history = _json(tt("history", "--json"))
    assert [h["detail"]["by"] for h in history] == ["person", "policy"]
    assert "hostname" in history[1]["detail"]["scope"]["fields"]
    tt("policy", app, "paused")
    assert _json(tt("apps", "--json"))[0]["policy"] == "paused"


def test_registering_again_issues_a_new_token(tt: Run) -> None:
    first = _json(tt("register", str(PHOTOEDIT), "--json"))["token"]
    out = tt("register", str(PHOTOEDIT)).stdout
    assert "already registered with this manifest" in out and "new token" in out
    assert first not in out


def test_version_and_help(tt: Run) -> None:
    assert tt("--version").stdout.strip() == f"telemetry-tray {__version__}"
    assert "approve" in tt("--help").stdout


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        (["frobnicate"], None, "invalid choice"),
        (["approve"], None, "required"),
        (["consent", APP, "maybe"], None, "invalid choice"),
        (["policy", APP, "sometimes"], None, "invalid choice"),
        (["register", "/nonexistent.toml"], None, "cannot read"),
        (["submit", APP], "{not json", "not valid JSON"),
        (["submit", APP], '{"event": "nope"}', "no report was accepted"),
        (["submit", APP], "[" * 2_000_000, "1 MiB"),
        (["submit", APP, "/nonexistent.json"], None, "cannot read"),
        (["submit", "org.nope.x"], '{"event": "crop"}', "No app"),
        (["show", "nope"], None, "No batch"),
        (["consent", "org.nope.x", "allow"], None, "No app"),
        (["show", "BATCH", "--coarsen", "ts"], None, "FIELD=LEVEL"),
        (["show", "BATCH", "--coarsen", "event=day"], None, "only be kept or excluded"),
        (["show", "BATCH", "--include", "nope"], None, "not a field"),
        (["show", "BATCH", "--exclude", "install_idd"], None, "'install_idd' is not a field of PhotoEdit"),
        (["approve", "BATCH", "--exclude", "install_idd"], None, "its fields are event, ts, app_version"),
        (["approve", "BATCH", "--exclude", "app_versio", "--remember"], None, "not a field"),
        (["approve", "BATCH", "--coarsen", "tss=day"], None, "'tss' is not a field"),
        (["approve", "BATCH", "--sha256", "00" * 32], None, "Look at it again"),
        (["approve", "BATCH"], None, "still collecting"),
    ],
)
def test_bad_input_gets_exit_2_and_one_line(tt: Run, args: list[str], stdin: str | None, words: str) -> None:
    tt("register", str(PHOTOEDIT))
    tt("consent", APP, "allow")
    tt("submit", APP, input='{"event": "crop"}')
    (batch,) = _json(tt("pending", "--json"))
    args = [batch["batch_id"] if a == "BATCH" else a for a in args]
    result = tt(*args, input=stdin, code=2)
    assert words in result.stderr
    assert _json(tt("pending", "--json")) == [batch]  # nothing else changed
    assert _json(tt("history", "--json")) == []


def test_bad_manifest_names_the_key(tt: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(PHOTOEDIT.read_text().replace('cadence = "daily"', 'cadence = "monthly"'))
    result = tt("register", str(bad), code=2)
    assert "'cadence'" in result.stderr and "hourly, daily, weekly" in result.stderr
    assert _json(tt("apps", "--json")) == []


def test_a_newer_database_is_a_runtime_failure(tt: Run) -> None:
    tt("status")
    db = tt.home / "data" / "telemetry-tray.sqlite3"  # type: ignore[attr-defined]
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {LATEST + 5}")
    conn.close()
    assert "newer Telemetry Tray" in tt("apps", code=1).stderr


def test_human_output_reads_well(tt: Run) -> None:
    out = tt("register", str(PHOTOEDIT)).stdout
    assert "shown only this once" in out
    tt("consent", APP, "allow")
    tt("submit", APP, input=json.dumps(REPORTS[1]))
    tt("close-batches")
    (batch,) = _json(tt("pending", "--json"))
    shown = tt("show", batch["batch_id"]).stdout
    for words in (
        "PhotoEdit",
        "telemetry.example.org",
        "Find which features crash",
        "90 days",
        "cursor (1)",
        "[----] account_email",
    ):
        assert words in shown
    assert batch["batch_id"] in tt("pending").stdout
    tt("discard", batch["batch_id"])
    assert "Nothing is waiting" in tt("pending").stdout


def test_a_misspelt_exclude_sends_nothing_it_meant_to_cut(tt: Run) -> None:
    tt("register", str(PHOTOEDIT))
    tt("consent", APP, "allow")
    tt("submit", APP, input=json.dumps({**REPORTS[0], "install_id": "i-123"}))
    tt("close-batches")
    (batch,) = _json(tt("pending", "--json"))
    tt("approve", batch["batch_id"], "--exclude", "app_versio", code=2)
    assert _json(tt("pending", "--json")) == [batch] and _json(tt("history", "--json")) == []
    # Spelt right it is cut; the pseudonymous id was never in the scope.
    approved = _json(tt("approve", batch["batch_id"], "--exclude", "app_version", "--json"))
    assert approved["payload"]["reports"] == [{"duration_ms": 120, "event": "crop", "ts": "2026-11-24T10:00:00Z"}]


def test_show_and_history_print_hidden_characters_as_escapes(tt: Run) -> None:
    tt("register", str(PHOTOEDIT))
    tt("consent", APP, "allow")
    spoof = "Linux\u202egpj.exe\u200b\x1b[2J"
    tt("submit", APP, input=json.dumps({"event": "crop", "os_version": spoof}))
    tt("close-batches")
    (batch,) = _json(tt("pending", "--json"))
    for args in (["show", batch["batch_id"]], ["show", batch["batch_id"], "--json"]):
        out = tt(*args).stdout
        assert "\u202e" not in out and "\u200b" not in out and "\x1b" not in out
        assert "Linux\\u202egpj.exe\\u200b\\u001b[2J" in out
    # The escapes are still JSON: --json decodes to the very value that is sent.
    assert _json(tt("show", batch["batch_id"], "--json"))["payload"]["reports"][0]["os_version"] == spoof
    # A vendor's answer is shown the same way in the history.
    tt("approve", batch["batch_id"])
    from tray_app.core import Broker, Locations

    broker = Broker.open(Locations.under(tt.home))  # type: ignore[attr-defined]
    try:
        (claim,) = broker.deliveries.claim("test")
        broker.deliveries.finish(claim, status=400, error=f"bad field: {spoof}")
    finally:
        broker.close()
    for args in (["history"], ["history", "--json"]):
        out = tt(*args).stdout
        assert "\u202e" not in out and "\x1b" not in out and "\\u202egpj" in out
    assert _json(tt("history", "--json"))[-1]["detail"]["error"] == f"bad field: {spoof}"


def test_quit_stops_the_running_instance_of_this_home(tmp_path: Path) -> None:
    from tests.support.processes import Proc

    home = tmp_path / "home"
    instance = Proc(home)
    try:
        # A stale endpoint.json naming a live process that holds no lock: nobody is signalled.
        endpoint = instance.endpoint()
        stopped = instance.cli("quit")
        assert stopped.returncode == 0, stopped.stderr
        assert f"Stopped Telemetry Tray (pid {endpoint['pid']})" in stopped.stdout
        assert instance.proc.wait(10) == 0  # a clean exit, as the tray's Quit
        assert not (home / "endpoint.json").exists()
        again = instance.cli("quit")
        assert again.returncode == 0 and "not running" in again.stdout
        (home / "endpoint.json").write_text(json.dumps({**endpoint, "pid": os.getpid()}))
        stale = instance.cli("quit")
        assert stale.returncode == 0 and "not running" in stale.stdout  # and this test still runs
    finally:
        if instance.proc.poll() is None:
            instance.kill()


def _one_approved_and_one_waiting(tt: Run) -> tuple[str, str]:
    tt("register", str(PHOTOEDIT))
    tt("consent", APP, "allow")
    tt("submit", APP, input=json.dumps(REPORTS[0]))
    (first,) = _json(tt("close-batches", "--json"))
    tt("approve", first["batch_id"])
    tt("submit", APP, input=json.dumps(REPORTS[1]))
    (second,) = _json(tt("close-batches", "--json"))
    return first["batch_id"], second["batch_id"]


def test_history_export_writes_the_chain_privately_and_it_verifies(tt: Run, tmp_path: Path) -> None:
    from tray_app.core import Receipt, export_chain, verify_chain

    approved, _ = _one_approved_and_one_waiting(tt)
    target = tmp_path / "out" / "history.json"
    target.parent.mkdir()
    out = tt("history", "--export", str(target)).stdout
    assert "Exported 1 receipt(s)" in out and "intact" in out
    assert target.stat().st_mode & 0o777 == 0o600
    assert list(target.parent.iterdir()) == [target]  # no temporary file left behind
    body = target.read_bytes()
    document = json.loads(body)
    receipts = [
        Receipt(r["seq"], r["at"], r["batch_id"], r["app_id"], r["action"], r["detail"], r["prev_hash"], r["hash"])
        for r in document["receipts"]
    ]
    assert [r.batch_id for r in receipts] == [approved]
    check = verify_chain(receipts)
    assert check.ok and document["verified"] is True and document["head"] == check.head and document["count"] == 1
    assert body == export_chain(receipts, document["exported_at"])  # the core's rule, byte for byte
    assert document["head"] in out

    assert "cannot write" in tt("history", "--export", str(tmp_path / "nowhere" / "h.json"), code=2).stderr
    assert "takes no --app" in tt("history", "--export", str(target), "--json", code=2).stderr


def test_history_export_of_an_altered_chain_says_so(tt: Run, tmp_path: Path) -> None:
    _one_approved_and_one_waiting(tt)
    db = tt.home / "data" / "telemetry-tray.sqlite3"  # type: ignore[attr-defined]
    conn = sqlite3.connect(db)
    conn.execute('UPDATE receipts SET detail = replace(detail, \'"by":"person"\', \'"by":"policy"\')')
    conn.commit()
    conn.close()
    target = tmp_path / "tampered.json"
    result = tt("history", "--export", str(target), code=1)
    assert "does not verify" in result.stderr
    document = json.loads(target.read_text(encoding="utf-8"))
    assert document["verified"] is False and "receipt 1" in document["problem"]


def test_remove_forgets_an_app_and_says_what_went(tt: Run) -> None:
    _, waiting = _one_approved_and_one_waiting(tt)
    assert "No app 'org.nope.x'" in tt("remove", "org.nope.x", code=2).stderr
    out = tt("remove", APP).stdout  # asks nothing
    assert f"Removed PhotoEdit ({APP})" in out
    assert "2 batch(es) not sent yet were discarded" in out  # the approved one and the waiting one
    assert "credentials" not in out  # its vendor takes none
    assert _json(tt("apps", "--json")) == [] and _json(tt("pending", "--json")) == []
    history = _json(tt("history", "--json"))
    assert [h["action"] for h in history] == ["approved", "discarded", "discarded"]
    assert {h["detail"].get("reason") for h in history[1:]} == {"app removed"}
    assert waiting in {h["batch_id"] for h in history}
    assert "intact" in tt("history", "--verify").stdout
    assert "No app" in tt("remove", APP, code=2).stderr


def test_remove_clears_the_apps_secret_from_the_keyring(tt: Run, tmp_path: Path) -> None:
    from tests.support.keyring_session import real_keyring

    store = real_keyring()
    manifest = tmp_path / "bearer.toml"
    manifest.write_text(PHOTOEDIT.read_text().replace('auth = "none"', 'auth = "bearer"'))
    tt("register", str(manifest))
    try:
        tt("credentials", "set", APP, input="tok-remove-me\n")
        assert store.get(APP) == "tok-remove-me"
        out = tt("remove", APP).stdout
        assert "Its vendor credentials were removed from the OS keyring." in out
        assert "tok-remove-me" not in out
        assert store.get(APP) is None
    finally:
        store.clear(APP)


# -- remedies: the core's messages name no shell; the CLI says its own commands ----------


def _remedied(problem: str, remedy: Remedy, app_id: str | None = None) -> TrayError:
    return TrayError(problem, remedy=remedy, app_id=app_id)


@pytest.mark.parametrize(
    ("error", "cli_text"),
    [
        (
            _remedied("PhotoEdit is not allowed to send telemetry yet.", Remedy.ALLOW_APP, "org.example.photoedit"),
            "PhotoEdit is not allowed to send telemetry yet. "
            "Allow it first: telemetry-tray consent org.example.photoedit allow",
        ),
        (
            _remedied("The person blocked PhotoEdit; its reports are not accepted.", Remedy.PERSON_ALLOWS, "x"),
            "The person blocked PhotoEdit; its reports are not accepted. "
            "Only they can allow it again (telemetry-tray consent APP allow).",
        ),
        (
            _remedied("32 apps already wait for your consent, so no new one is taken.", Remedy.ANSWER_WAITING_APPS),
            "32 apps already wait for your consent, so no new one is taken. Allow or block some first "
            "(telemetry-tray apps; telemetry-tray consent APP allow|block).",
        ),
        (
            _remedied("Batch b is still collecting reports, so it may hold more than you saw.", Remedy.CLOSE_BATCHES),
            "Batch b is still collecting reports, so it may hold more than you saw. "
            "Close it first (telemetry-tray close-batches), or approve with the --sha256 that show printed.",
        ),
        (
            _remedied("No app 'org.nope.x' is registered.", Remedy.SEE_APPS, "org.nope.x"),
            "No app 'org.nope.x' is registered. See the registered apps with: telemetry-tray apps",
        ),
        (
            _remedied("No batch 'abcd'.", Remedy.SEE_PENDING),
            "No batch 'abcd'. See waiting batches with: telemetry-tray pending",
        ),
        (
            _remedied("This vendor needs a secret (auth = bearer) and none is stored.", Remedy.SET_CREDENTIALS),
            "This vendor needs a secret (auth = bearer) and none is stored. "
            "Set it with: telemetry-tray credentials set APP (the secret is read from standard input).",
        ),
    ],
)
def test_the_cli_words_each_remedy_as_it_always_did(error: TrayError, cli_text: str) -> None:
    assert "telemetry-tray" not in error.message
    assert explain(error) == cli_text


def test_every_remedy_has_words_in_each_shell() -> None:
    from tray_app.cli import _REMEDIES

    assert set(_REMEDIES) == set(Remedy)
    for remedy in Remedy:
        assert "telemetry-tray" not in remedy.neutral


def test_the_cli_prints_the_remedy_of_a_core_error(tt: Run) -> None:
    result = tt("show", "abcdef", code=2)
    expected = "telemetry-tray: No batch 'abcdef'. See waiting batches with: telemetry-tray pending"
    assert result.stderr.strip() == expected
