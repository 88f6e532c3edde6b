"""OpenTelemetry in and out, end to end: the stock Python SDK, configured by the environment
lines ``telemetry-tray connect`` prints and nothing else, sends logs and metrics to a running
instance; the person reviews and approves them with the CLI; the instance delivers them to
the vendor's collector, which parses them strictly as OTLP and gets exactly the bytes that
were shown and approved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.shells.test_otlp_ingest import EMIT
from tests.shells.test_otlp_ingest import MANIFEST as RECEIVER_MANIFEST
from tests.support.otlp_collector import Collector, collector
from tests.support.processes import Proc, wait_for
from tray_app.core.rules.canonical_json import canonical_bytes

APP = "org.example.inkwell"
# The receiver tests' app, whose vendor runs a collector: format = "otlp", at least 2 of a value.
MANIFEST = RECEIVER_MANIFEST.replace(
    'endpoint = "https://telemetry.example.org/v1/batches"',
    'endpoint = "{endpoint}"\nformat = "otlp"\nmin_count = 2',
).replace("{otlp}", '\n[otlp]\nservice_names = ["tiny"]\n')


def _cli(proc: Proc, *args: str) -> str:
    result = proc.cli(*args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def _emit(connect_lines: dict[str, str], what: str) -> None:
    """The stock SDK with ``connect``'s lines as its only OTEL_ settings besides the app's own
    version (which an app sets about itself, not to reach the tray)."""
    variables = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    variables.update(connect_lines, OTEL_RESOURCE_ATTRIBUTES="service.version=1.2.3")
    result = subprocess.run(
        [sys.executable, "-c", EMIT, what], env=variables, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and "Failed to export" not in result.stderr, result.stderr


def _review_and_approve(proc: Proc, *edits: str) -> tuple[str, bytes]:
    _cli(proc, "close-batches")
    [batch] = [b for b in json.loads(_cli(proc, "pending", "--json")) if b["app_id"] == APP]
    shown = json.loads(_cli(proc, "show", batch["batch_id"], "--json", *edits))
    _cli(proc, "approve", batch["batch_id"], "--sha256", shown["payload_sha256"], *edits)
    return str(batch["batch_id"]), canonical_bytes(shown["payload"])


def _delivered(proc: Proc, c: Collector, count: int) -> None:
    # The running instance sends as soon as the CLI's approval wakes it.
    assert wait_for(lambda: len(c.received) >= count, 30), proc.output()


@pytest.mark.slow
def test_stock_sdk_telemetry_is_held_reviewed_approved_and_reaches_the_collector_as_approved(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with collector([200]) as c, Proc(home, extra_env={"TELEMETRY_TRAY_OTLP_PORT": "0"}) as proc:
        manifest = tmp_path / "inkwell.toml"
        manifest.write_text(MANIFEST.format(app_id=APP, endpoint=c.url), encoding="utf-8")
        _cli(proc, "register", str(manifest))
        _cli(proc, "consent", APP, "allow")
        lines = json.loads(_cli(proc, "connect", APP, "--json"))
        assert lines["OTEL_EXPORTER_OTLP_ENDPOINT"] == json.loads(_cli(proc, "status", "--json"))["otlp_url"]

        # Logs: two records; the person leaves the severity out.
        _emit(lines, "logs")
        batch, shown = _review_and_approve(proc, "--exclude", "level")
        _delivered(proc, c, 1)
        logs = c.received[0]
        assert c.refused == []
        assert logs.path == "/v1/logs" and logs.body == shown
        records = logs.request.resource_logs[0].scope_logs[0].log_records
        assert [r.event_name for r in records] == ["tiny.export", "tiny.crop"]
        assert [[(a.key, a.value.string_value) for a in r.attributes] for r in records] == [
            [("app_version", "1.2.3"), ("event", "export")],
            [("app_version", "1.2.3"), ("event", "crop")],
        ]
        assert all(r.severity_number == 0 and not r.severity_text for r in records)  # excluded: not sent
        for never in (b"secret.txt", b"service.instance.id", b"telemetry.sdk", b"feature used"):
            assert never not in logs.body  # undeclared: dropped on arrival

        # Metrics: two runs' delta counter points, sent as counts (at least min_count = 2 of a
        # value, or it folds away); the histogram is refused at ingest.
        _emit(lines, "metrics")
        _emit(lines, "metrics")
        _, counted = _review_and_approve(proc, "--aggregate")
        _delivered(proc, c, 2)
        metrics = c.received[1]
        assert metrics.path == "/v1/metrics" and metrics.body == counted
        sums: dict[str, Any] = {m.name: m.sum for m in metrics.request.resource_metrics[0].scope_metrics[0].metrics}
        by_counter = sums["telemetry_tray.reports.by_counter"]
        assert by_counter.aggregation_temporality == 1 and by_counter.is_monotonic
        assert [(p.attributes[0].value.string_value, p.as_int) for p in by_counter.data_points] == [("tiny.exports", 2)]

        history = json.loads(_cli(proc, "history", "--json"))
        delivered = [h for h in history if h["action"] == "delivered"]
        assert [h["detail"]["endpoint"] for h in delivered] == [c.url + "/v1/logs", c.url + "/v1/metrics"]
        assert delivered[0]["batch_id"] == batch
        assert proc.stop() == 0
