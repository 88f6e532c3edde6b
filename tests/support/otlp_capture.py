"""A tiny OTLP/HTTP receiver on 127.0.0.1 that records what a real OpenTelemetry exporter sends.

It answers every POST 200 with an empty ``Export…ServiceResponse`` in the request's encoding
(``b""`` for protobuf, ``{}`` for JSON: full success, so the exporter neither retries nor
logs), and records the path, the headers and the body (gunzipped when the exporter
compressed it). Used as ``with capture() as server: ... server.url ... server.received``,
or through :func:`run_exporter`, which runs a program using a stock SDK against it.
"""

from __future__ import annotations

import gzip
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.http_capture import RawPost, Recorder, recording


@dataclass(frozen=True)
class Captured:
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes  # decompressed
    gzipped: bool


def _answer(post: RawPost) -> tuple[str, bytes]:
    """Full success, in the request's encoding."""
    if post.headers.get("content-type", "").startswith("application/json"):
        return "application/json", b"{}"
    return "application/x-protobuf", b""


def _captured(post: RawPost) -> Captured:
    gzipped = post.headers.get("content-encoding", "").lower() == "gzip"
    return Captured(post.target, post.headers, gzip.decompress(post.body) if gzipped else post.body, gzipped)


class Capture:
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._recorder.port}"

    @property
    def received(self) -> list[Captured]:
        return [_captured(post) for post in self._recorder.received]

    def at(self, path: str) -> list[Captured]:
        return [item for item in self.received if item.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 10.0) -> list[Captured]:
        self._recorder.wait_until(lambda posts: sum(p.target == path for p in posts) >= count, timeout)
        return self.at(path)


@contextmanager
def capture() -> Iterator[Capture]:
    with recording(_answer) as recorder:
        yield Capture(recorder)


@dataclass(frozen=True)
class Exported:
    """What one run of an exporting program sent (its one logs and one metrics request)
    and what it wrote to stderr."""

    logs: Captured
    metrics: Captured
    stderr: str


def run_exporter(
    command: Sequence[str],
    *,
    compressed: bool,
    temporality: str = "delta",
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    clear: tuple[str, ...] = ("OTEL_",),
) -> Exported:
    """Run ``command``, a program that logs and records metrics through a stock
    OpenTelemetry SDK configured by environment variables only, against a fresh
    :func:`capture` server; it must exit 0 having sent one logs and one metrics request.

    This session's variables starting with one of ``clear`` are left out; the exporter
    is pointed at the server with the bearer token ``tok123`` (percent-encoded, as the
    spec's OTEL_EXPORTER_OTLP_HEADERS wants), service ``photoedit`` at version 3.1.4,
    the metrics ``temporality``, gzip when ``compressed``; ``env`` adds the rest."""
    with capture() as server:
        variables = {key: value for key, value in os.environ.items() if not key.startswith(clear)}
        variables.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=server.url,
            OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20tok123",
            OTEL_SERVICE_NAME="photoedit",
            OTEL_RESOURCE_ATTRIBUTES="service.version=3.1.4",
            OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=temporality,
            OTEL_EXPORTER_OTLP_COMPRESSION="gzip" if compressed else "none",
        )
        variables.update(env or {})
        result = subprocess.run(
            list(command), cwd=cwd, env=variables, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
        logs = server.wait_for("/v1/logs")
        metrics = server.wait_for("/v1/metrics")
    assert len(logs) == 1 and len(metrics) == 1, [item.path for item in server.received]
    return Exported(logs[0], metrics[0], result.stderr)
