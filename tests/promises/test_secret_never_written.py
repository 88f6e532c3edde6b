"""A planted secret is found nowhere but in the OS keyring: not in any file we write, not in
the database or its journal, not in a log line or any output, even when the vendor echoes it."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.support.builders import manifest_obj
from tests.support.fake_vendor import vendor
from tests.support.keyring_session import real_keyring
from tests.support.processes import Proc, tray_cli, tray_env, wait_for

pytestmark = pytest.mark.slow

APP = "org.example.tiny"


def test_a_planted_secret_is_only_in_the_keyring(tmp_path: Path) -> None:
    store = real_keyring()
    home = tmp_path / "home"
    env = tray_env(home)
    tt = tray_cli(env)
    secret = "planted-" + secrets.token_urlsafe(24)
    outputs: list[str] = []
    log = tmp_path / "instance.log"
    script = [("body", 503, b"no such key: " + secret.encode()), (200, {"X-Request-Id": secret})]
    try:
        with vendor(script) as v:
            instance = Proc(home, log=log, ready_s=20)  # its stdout and stderr, both in the log
            try:
                assert "listening on" in log.read_text(), log.read_text()
                manifest = tmp_path / "manifest.json"
                manifest.write_text(json.dumps(manifest_obj(endpoint=v.url, auth="bearer")))
                for args, stdin in [
                    (("register", str(manifest)), None),
                    (("consent", APP, "allow"), None),
                    (("credentials", "set", APP), secret + "\n"),
                    (("submit", APP), json.dumps({"reports": [{"event": "launch"}]})),
                    (("close-batches",), None),
                ]:
                    result = tt(*args, input=stdin)
                    outputs += [result.stdout, result.stderr]
                (batch,) = json.loads(tt("pending", "--json").stdout)
                shown = json.loads(tt("show", batch["batch_id"], "--json").stdout)
                result = tt("approve", batch["batch_id"], "--sha256", shown["payload_sha256"])
                outputs += [result.stdout, result.stderr]

                def delivered() -> bool:
                    return json.loads(tt("show", batch["batch_id"], "--json").stdout)["status"] == "delivered"

                # First answer 503 echoing the key in its body, then 200 echoing it as the request id.
                assert wait_for(delivered, 30), log.read_text()
            finally:
                instance.stop()
            assert [r.headers["authorization"] for r in v.received] == [f"Bearer {secret}"] * 2
        for verb in (("history", "--json"), ("show", batch["batch_id"], "--json"), ("status", "--json"), ("apps",)):
            result = tt(*verb)
            outputs += [result.stdout, result.stderr]
        assert store.get(APP) == secret  # it was planted, in the keyring
        history = json.loads(tt("history", "--json").stdout)
        assert any("[secret]" in json.dumps(entry) for entry in history), history  # the echo, redacted

        written = [path for path in home.rglob("*") if path.is_file()]
        assert any(path.name.endswith(".sqlite3") for path in written)
        for path in [*written, log]:
            data = path.read_bytes()
            for form in (secret.encode(), secret.encode("utf-16-le"), secret[8:].encode()):
                assert form not in data, path
        assert log.read_text().strip(), "the instance logged nothing at all"
        for text in outputs:
            assert secret not in text and secret[8:] not in text
    finally:
        store.clear(APP)
