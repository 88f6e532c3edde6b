"""``show``'s summary, end to end: the real command in a subprocess, on a temporary home.

``show --json`` has DESIGN.md's ``summary`` shape exactly; plain ``show`` prints a short
version of it above the payload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import PHOTOEDIT
from tests.support.processes import Run, tray_cli, tray_env

APP = "org.example.photoedit"
REPORTS: list[dict[str, Any]] = [
    {"event": "crop", "ts": "2026-11-24T10:11:12Z", "duration_ms": 120, "account_email": "a@b.c"},
    {"event": "crop", "ts": "2026-11-24T10:40:00Z", "duration_ms": 120, "account_email": "a@b.c"},
    {"event": "export", "ts": "2026-11-24T22:05:00Z", "duration_ms": 900, "account_email": "a@b.c"},
]
SHOW_KEYS = {"batch_id", "app_id", "status", "scope", "payload", "payload_sha256", "payload_bytes", "summary"}


@pytest.fixture
def tt(tmp_path: Path) -> Run:
    """The CLI in UTC, so the hours a summary names are the reports' own."""
    return tray_cli(tray_env(tmp_path / "home", TZ="UTC"))


def _pending_batch(tt: Run, reports: list[dict[str, Any]]) -> str:
    tt("register", str(PHOTOEDIT))
    tt("consent", APP, "allow")
    tt("submit", APP, input=json.dumps({"reports": reports}))
    tt("close-batches")
    (batch,) = json.loads(tt("pending", "--json").stdout)
    return str(batch["batch_id"])


def test_show_json_has_the_summary_in_designs_shape(tt: Run) -> None:
    batch = _pending_batch(tt, REPORTS)
    shown = json.loads(tt("show", batch, "--json", "--include", "account_email").stdout)
    assert set(shown) == SHOW_KEYS
    summary = shown["summary"]
    assert set(summary) == {"fields", "linkable_by"}
    assert set(summary["fields"]) == set(shown["scope"]["fields"])
    for field in summary["fields"].values():
        assert set(field) == {"distinct", "top"}
        assert all(isinstance(v, str) and isinstance(n, int) for v, n in field["top"])
    # Values in value_key spelling, as aggregates spell them; most common first.
    assert summary["fields"]["duration_ms"] == {"distinct": 2, "top": [["120", 2], ["900", 1]]}
    assert summary["fields"]["event"] == {"distinct": 2, "top": [["crop", 2], ["export", 1]]}
    assert summary["fields"]["account_email"] == {"distinct": 1, "top": [["a@b.c", 3]]}
    assert summary["fields"]["gpu_accelerated"] == {"distinct": 0, "top": []}
    assert summary["linkable_by"] == []  # nothing was delivered before
    # Counts: the summary is the counts themselves, folded as sent (here: too few to show).
    counted = json.loads(tt("show", batch, "--json", "--aggregate").stdout)["summary"]
    assert counted["fields"]["event"] == {"distinct": 0, "top": []}  # 3 reports: fewer than min_count 5
    # A discarded batch sends nothing: no summary.
    tt("discard", batch)
    gone = json.loads(tt("show", batch, "--json").stdout)
    assert set(gone) == SHOW_KEYS and gone["summary"] is None


def test_plain_show_prints_the_summary_above_the_payload(tt: Run) -> None:
    batch = _pending_batch(tt, REPORTS)
    out = tt("show", batch, "--include", "account_email", "--coarsen", "ts=hour").stdout
    lines = out.splitlines()
    start = lines.index("What this batch says (3 reports):")
    payload = next(i for i, line in enumerate(lines) if line.startswith("Payload: "))
    mode = next(i for i, line in enumerate(lines) if line.startswith("Mode: "))
    assert mode < start < payload
    said = lines[start + 1 : payload]
    # Identifying first, then the rest in scope order; one line per included field.
    assert said[0].split() == ["account_email", "1", "value", "in", "3", "reports:", "'a@b.c'", "(3)"]
    assert [line.split()[0] for line in said[:7]] == [
        "account_email", "app_version", "duration_ms", "event", "gpu_accelerated", "os_version", "ts",
    ]  # fmt: skip
    assert "  duration_ms      2 values in 3 reports: 120 (2), 900 (1)" in said
    sentences = [line for line in said if line.startswith("  * ")]
    assert any("account_email is marked identifying" in line and "who you are" in line for line in sentences)
    assert any("between 10:00-11:00 and 22:00-23:00 (UTC time)" in line for line in sentences)
    # Coarsened to the day, the hours are gone from the words.
    day = tt("show", batch, "--coarsen", "ts=day").stdout
    assert "What this batch says" in day and "hours you were active" not in day


def test_plain_show_says_what_counts_fold(tt: Run) -> None:
    batch = _pending_batch(tt, REPORTS * 2)
    out = tt("show", batch, "--aggregate").stdout
    assert "  event            0 values in 6 reports: (other) (6)" in out
    assert "event: values seen fewer than 5 times are counted together as (other) (6 reports)" in out
    assert out.index("What this batch says") < out.index("Payload: ")
