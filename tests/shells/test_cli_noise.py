"""``--noise FIELD=EPSILON`` on ``show`` and ``approve``: the real command in a subprocess, on
a temporary TELEMETRY_TRAY_HOME, with a manifest that offers noise."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from tests.support.builders import PHOTOEDIT
from tests.support.processes import Run
from tray_app.core.rules.canonical_json import canonical_bytes
from tray_app.core.rules.noise import noise_in_words

from .test_cli import _json

APP = "org.example.photoedit"
# 40 reports, so that a draw of noise and no noise at all cannot be the same bytes by chance.
REPORTS = [{"event": ["crop", "open"][i % 2], "gpu_accelerated": i % 3 == 0, "duration_ms": i} for i in range(40)]


def _register(tt: Run, tmp_path: Path) -> None:
    """PhotoEdit, offering noise on its boolean (ε up to 1) and its enum (ε up to 2)."""
    text = PHOTOEDIT.read_text()
    text = text.replace('type = "boolean"\n', 'type = "boolean"\nnoise = 1.0\n')
    text = text.replace('"filter", "crash"]\n', '"filter", "crash"]\nnoise = 2\n')
    assert text.count("noise =") == 2
    manifest = tmp_path / "photoedit-noise.toml"
    manifest.write_text(text)
    tt("register", str(manifest))
    tt("consent", APP, "allow")


def _batch(tt: Run) -> str:
    tt("submit", APP, input=json.dumps({"reports": REPORTS}))
    tt("close-batches")
    (batch,) = _json(tt("pending", "--json"))
    return str(batch["batch_id"])


def test_show_and_approve_with_noise_send_the_bytes_shown(tt: Run, tmp_path: Path) -> None:
    _register(tt, tmp_path)
    batch = _batch(tt)
    noise = ("--noise", "gpu_accelerated=1", "--noise", "event=0.5")
    shown = _json(tt("show", batch, "--json", *noise))
    body = canonical_bytes(shown["payload"])
    assert shown["payload_sha256"] == hashlib.sha256(body).hexdigest()
    assert shown["scope"]["noise"] == {"event": 0.5, "gpu_accelerated": 1.0}
    assert shown["payload"]["scope"]["noise"] == {"event": 0.5, "gpu_accelerated": 1.0}
    for sent in shown["payload"]["reports"]:
        assert sent["event"] in ("open", "export", "crop", "filter", "crash")
        assert isinstance(sent["gpu_accelerated"], bool)
    # Without noise the values are the true ones; with it again, the same draw as before.
    plain = _json(tt("show", batch, "--json"))
    assert "noise" not in plain["scope"]
    assert [r["gpu_accelerated"] for r in plain["payload"]["reports"]] == [r["gpu_accelerated"] for r in REPORTS]
    assert plain["payload_sha256"] != shown["payload_sha256"]
    assert _json(tt("show", batch, "--json", *noise))["payload_sha256"] == shown["payload_sha256"]
    # The secret the draw comes from is in no output.
    conn = sqlite3.connect(tt.home / "data" / "telemetry-tray.sqlite3")  # type: ignore[attr-defined]
    (seed,) = conn.execute("SELECT noise_seed FROM batches WHERE batch_id = ?", (batch,)).fetchone()
    conn.close()
    assert len(seed) == 32
    words = tt("show", batch, *noise).stdout
    assert seed.hex() not in json.dumps(shown) + words

    approved = _json(tt("approve", batch, "--json", *noise, "--sha256", shown["payload_sha256"]))
    assert approved["payload_sha256"] == shown["payload_sha256"] and approved["payload"] == shown["payload"]
    (receipt,) = _json(tt("history", "--json"))
    assert receipt["detail"]["scope"]["noise"] == {"event": 0.5, "gpu_accelerated": 1.0}
    assert receipt["detail"]["payload_sha256"] == shown["payload_sha256"]


def test_plain_show_says_which_fields_carry_noise_and_what_it_means(tt: Run, tmp_path: Path) -> None:
    _register(tt, tmp_path)
    batch = _batch(tt)
    offered = tt("show", batch).stdout
    assert "gpu_accelerated (boolean, anonymous, noise offered up to ε=1)" in offered
    assert "event (enum, anonymous, noise offered up to ε=2)" in offered
    assert "replaced at random" not in offered
    out = tt("show", batch, "--noise", "gpu_accelerated=1").stdout
    assert "gpu_accelerated (boolean, anonymous, with noise at ε=1)" in out
    assert f"noise: {noise_in_words(1.0, 2)}" in out
    assert "about 27% of these answers are replaced at random before sending" in out


def test_remember_saves_the_noise_and_off_takes_it_away(tt: Run, tmp_path: Path) -> None:
    _register(tt, tmp_path)
    first = _batch(tt)
    tt("approve", first, "--noise", "gpu_accelerated=0.5", "--remember")
    tt("submit", APP, input=json.dumps({"reports": REPORTS}))
    tt("close-batches")  # approved by the policy, with the saved scope
    history = _json(tt("history", "--json"))
    assert [h["detail"]["by"] for h in history] == ["person", "policy"]
    assert history[1]["detail"]["scope"]["noise"] == {"gpu_accelerated": 0.5}
    tt("policy", APP, "ask")
    third = _batch(tt)
    assert _json(tt("show", third, "--json"))["scope"]["noise"] == {"gpu_accelerated": 0.5}
    assert "noise" not in _json(tt("show", third, "--json", "--noise", "gpu_accelerated=off"))["scope"]


BAD = [
    (["--noise", "gpu_accelerated"], "--noise takes FIELD=EPSILON (like gpu_accelerated=1) or FIELD=off"),
    (["--noise", "gpu_accelerated=lots"], "not 'gpu_accelerated=lots'"),
    (["--noise", "=1"], "--noise takes FIELD=EPSILON"),
    (["--noise", "gpu=1"], "'gpu' is not a field of PhotoEdit; its fields are event, ts"),
    (["--noise", "duration_ms=1"], "PhotoEdit offers no noise for 'duration_ms'; fields that offer it: event"),
    (["--noise", "gpu_accelerated=5"], "at an epsilon of at most 1 (a smaller epsilon is more noise), not 5"),
    (["--noise", "gpu_accelerated=0.01"], "0.01 is out of range; an epsilon is from 0.1"),
    (["--noise", "gpu_accelerated=nan"], "nan is out of range"),
    (["--exclude", "gpu_accelerated", "--noise", "gpu_accelerated=1"], "'gpu_accelerated' is excluded"),
]


def test_bad_noise_is_exit_2_with_one_line_and_changes_nothing(tt: Run, tmp_path: Path) -> None:
    _register(tt, tmp_path)
    batch = _batch(tt)
    for args, words in BAD:
        for verb in ("show", "approve"):
            result = tt(verb, batch, *args, code=2)
            assert words in result.stderr, (verb, args, result.stderr)
    assert [b["batch_id"] for b in _json(tt("pending", "--json"))] == [batch]
    assert _json(tt("history", "--json")) == []
