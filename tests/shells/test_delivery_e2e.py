"""Delivery end to end: the CLI and the running instance against a real vendor server."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import ROOT, manifest_obj
from tests.support.fake_vendor import Vendor, vendor
from tests.support.keyring_session import real_keyring
from tests.support.processes import Proc, Run, tray_cli, tray_env, wait_for
from tray_app.core.rules.canonical_json import canonical_bytes

APP = "org.example.tiny"


def _approved_batch(tt: Run, tmp_path: Path, url: str, **manifest: Any) -> tuple[str, bytes]:
    path = tmp_path / f"manifest-{secrets.token_hex(3)}.json"
    path.write_text(json.dumps(manifest_obj(endpoint=url, **manifest)))
    tt("register", str(path))
    tt("consent", APP, "allow")
    tt("submit", APP, input=json.dumps({"reports": [{"event": "launch", "n": 3}, {"event": "quit"}]}))
    tt("close-batches")
    (batch,) = json.loads(tt("pending", "--json").stdout)
    shown = json.loads(tt("show", batch["batch_id"], "--json").stdout)
    tt("approve", batch["batch_id"], "--sha256", shown["payload_sha256"])
    return batch["batch_id"], canonical_bytes(shown["payload"])


@pytest.mark.slow
def test_deliver_sends_exactly_what_was_shown(tmp_path: Path) -> None:
    tt = tray_cli(tray_env(tmp_path / "home"))
    with vendor([200]) as v:
        batch, shown = _approved_batch(tt, tmp_path, v.url)
        out = tt("deliver").stdout
        assert f"{batch}  {APP}  delivered" in out
        assert v.bodies() == [shown]
        assert v.received[0].headers["idempotency-key"] == batch
        assert "Nothing to send." in tt("deliver").stdout
    history = json.loads(tt("history", "--json").stdout)
    assert [h["action"] for h in history] == ["approved", "delivered"]
    assert history[1]["detail"]["payload_bytes"] == len(shown)
    assert json.loads(tt("show", batch, "--json").stdout)["status"] == "delivered"


@pytest.mark.slow
def test_deliver_wait_retries_until_delivered(tmp_path: Path) -> None:
    tt = tray_cli(tray_env(tmp_path / "home"))
    with vendor([503, 200]) as v:
        batch, _ = _approved_batch(tt, tmp_path, v.url)
        started = time.monotonic()
        out = tt("deliver", "--wait", "20").stdout
        assert time.monotonic() - started < 15
        assert "retrying (HTTP 503)" in out and f"{batch}  {APP}  delivered" in out
        assert len(v.received) == 2


@pytest.mark.slow
def test_deliver_exit_codes_for_failure_and_retry(tmp_path: Path) -> None:
    tt = tray_cli(tray_env(tmp_path / "home"))
    with vendor([400]) as v:
        _approved_batch(tt, tmp_path, v.url)
        result = tt("deliver", code=1)
        assert "failed (HTTP 400)" in result.stdout and "failed for good" in result.stderr
    with vendor([503]) as v:
        tt2 = tray_cli(tray_env(tmp_path / "home2"))
        _approved_batch(tt2, tmp_path, v.url)
        result = tt2("deliver", "--json", code=1)
        body = json.loads(result.stdout)
        assert [o["outcome"] for o in body["outcomes"]] == ["retrying"]
        assert len(body["undelivered"]) == 1
    assert "--wait" in tray_cli(tray_env(tmp_path / "h3"))("deliver", "--wait", "-1", code=2).stderr


def test_no_keyring_holds_only_the_vendors_that_need_a_secret(tmp_path: Path) -> None:
    env = tray_env(tmp_path / "home", PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    tt = tray_cli(env)
    with vendor([200]) as v:
        _approved_batch(tt, tmp_path, v.url, auth="bearer")
        result = tt("deliver", code=1)
        assert "waiting for credentials" in result.stdout
        assert v.received == []
        set_result = tt("credentials", "set", APP, input="s3cret\n", code=1)
        assert "keyring" in set_result.stderr.lower()
        assert "s3cret" not in set_result.stderr


def test_credentials_from_the_keyring_and_never_in_our_files(tmp_path: Path) -> None:
    store = real_keyring()
    home = tmp_path / "home"
    tt = tray_cli(tray_env(home))
    secret = "tt-" + secrets.token_urlsafe(24)
    try:
        with vendor([200]) as v:
            batch, shown = _approved_batch(tt, tmp_path, v.url, auth="header:X-Api-Key")
            assert "waiting for credentials" in tt("deliver", code=1).stdout
            out = tt("credentials", "set", APP, input=secret + "\n").stdout
            assert "1 batch(es) that waited" in out and secret not in out
            assert f"{batch}  {APP}  delivered" in tt("deliver").stdout
            assert v.received[0].headers["x-api-key"] == secret
            assert v.received[0].body == shown
        for path in home.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
        assert "removed" in tt("credentials", "clear", APP).stdout
        assert store.get(APP) is None
    finally:
        store.clear(APP)


def test_credentials_for_an_app_without_auth_is_bad_input(tmp_path: Path) -> None:
    tt = tray_cli(tray_env(tmp_path / "home"))
    with vendor([200]) as v:
        _approved_batch(tt, tmp_path, v.url)
    assert "needs no credentials" in tt("credentials", "set", APP, input="x", code=2).stderr
    assert "No app" in tt("credentials", "set", "org.nope.x", input="x", code=2).stderr


def test_the_instance_sends_as_soon_as_the_cli_approves(tmp_path: Path) -> None:
    env = tray_env(tmp_path / "home")
    tt = tray_cli(env)
    instance = Proc(tmp_path / "home")
    try:
        with vendor([200]) as v:
            batch, shown = _approved_batch(tt, tmp_path, v.url)
            assert wait_for(lambda: len(v.received) == 1, 5), "not sent within 5 s of approval"
            assert v.bodies() == [shown]
            assert wait_for(lambda: json.loads(tt("show", batch, "--json").stdout)["status"] == "delivered", 5)
    finally:
        instance.stop()


@pytest.mark.slow
def test_kill_9_during_a_send_never_sends_twice_and_resumes(tmp_path: Path) -> None:
    # A short send timeout makes the lease short too (2 x the timeouts + 10 s = 14 s).
    env = tray_env(tmp_path / "home", TELEMETRY_TRAY_SEND_TIMEOUT="0.5")
    tt = tray_cli(env)
    v: Vendor
    with vendor([("hang", 2), 200]) as v:
        batch, shown = _approved_batch(tt, tmp_path, v.url)
        sender = subprocess.Popen([sys.executable, "-m", "tray_app", "deliver"], env=env, cwd=ROOT)
        assert wait_for(lambda: len(v.received) == 1, 10)
        sender.kill()  # SIGKILL while the vendor is still answering
        sender.wait()
        # Restarted at once: the dead sender's claim still holds, so nothing is resent yet.
        again = tt("deliver", code=1)
        assert len(v.received) == 1
        assert "not delivered yet" in again.stdout
        # Once the claim runs out, the batch goes again with the same key and bytes.
        assert "delivered" in tt("deliver", "--wait", "30").stdout
        assert len(v.received) == 2
        assert {r.headers["idempotency-key"] for r in v.received} == {batch}
        assert v.bodies() == [shown, shown]
    history = [h["action"] for h in json.loads(tt("history", "--json").stdout)]
    assert history == ["approved", "delivered"]


def test_a_batch_a_read_only_verb_closes_and_approves_is_sent_at_once(tmp_path: Path) -> None:
    # The CLI tidies on every verb: a window that ended may close there and, with policy
    # approve, be approved in the CLI's process; the running instance must hear of it.
    import sqlite3

    env = tray_env(tmp_path / "home")
    tt = tray_cli(env)
    instance = Proc(tmp_path / "home")
    try:
        with vendor([200]) as v:
            path = tmp_path / "manifest.json"
            path.write_text(json.dumps(manifest_obj(endpoint=v.url)))
            tt("register", str(path))
            tt("consent", APP, "allow")
            tt("policy", APP, "approve")
            tt("submit", APP, input=json.dumps({"reports": [{"event": "launch"}]}))
            database = tmp_path / "home" / "data" / "telemetry-tray.sqlite3"
            with sqlite3.connect(database) as conn:  # the window ends now, not at midnight
                conn.execute("UPDATE batches SET window_end = '2000-01-01T00:00:00Z' WHERE status = 'open'")
            tt("status")  # only reads; its tidy closes the batch and the policy approves it
            assert wait_for(lambda: len(v.received) == 1, 5), "the instance did not send within 5 s"
    finally:
        instance.stop()
