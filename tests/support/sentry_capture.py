"""A tiny Sentry receiver on 127.0.0.1 that records what a stock ``sentry-sdk`` sends.

It answers every POST 200 ``{"id": …}`` (what Sentry answers, so the SDK neither logs an
error nor backs off) and records the path, the query, the headers and the body exactly as
they came (still compressed: decoding them is what the tests test). Used as
``with capture() as server: ... server.dsn("KEY") ... server.received``, or through
:func:`run_sentry_script`, which runs a program using a stock SDK against it.

:func:`run_sentry_script` can hide the ``brotli`` module from the program (a folder first on
``PYTHONPATH`` whose ``brotli.py`` raises ``ImportError``): sentry-python compresses with
brotli when it can import it and with gzip otherwise (``sentry_sdk/transport.py``), so both
of the SDK's own choices can be had without touching its options.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

from tests.support.http_capture import RawPost, Recorder, recording

BLOCKED_BROTLI = 'raise ImportError("brotli is hidden from this program by the test")\n'

# Values a stock SDK sends by default and the tray must never keep.
PLANTED_SECRET = "PLANTED-SECRET-1234"  # a local variable's value (sentry's scrubber lets "draft_note" through)
PLANTED_USER = "planteduser"  # in the app's absolute paths
PLANTED_HOST = "planted-host"  # server_name
PLANTED_CRUMB = "opened-planted-document"  # a breadcrumb
PLANTED_VALUES = (PLANTED_SECRET, PLANTED_USER, PLANTED_HOST, PLANTED_CRUMB)

# An app with a stock sentry-sdk: photoedit's export fails inside a json.loads callback, so the
# stack has the app's frames (main, export_image, _check) around the standard library's.
# ``main.py crash`` captures it; ``attach`` adds an attachment first; ``plain`` sends it
# uncompressed (sentry-sdk's own compression-level option); ``session`` ends a session too.
APP_MAIN = Template("""
import sys

import sentry_sdk

from photoedit.export import ExportError, export_image

mode = sys.argv[1]
options = {"_experiments": {"transport_compression_level": 0}} if mode == "plain" else {}
sentry_sdk.init(server_name="$host", release="photoedit@3.1.4", environment="production", **options)
sentry_sdk.set_tag("plan", "pro")
sentry_sdk.add_breadcrumb(message="$crumb /home/$user/Pictures/holiday.png", category="io")
if mode == "attach":
    sentry_sdk.get_isolation_scope().add_attachment(
        bytes=b"MDMP\\x93\\xa7 memory of $secret", filename="crash.dmp", content_type="application/octet-stream"
    )
if mode == "session":
    sentry_sdk.get_isolation_scope().start_session()
try:
    export_image("/home/$user/Pictures/holiday.png")
except ExportError:
    sentry_sdk.capture_exception()
if mode == "session":
    sentry_sdk.get_isolation_scope().end_session()
sentry_sdk.flush(10)
""").substitute(host=PLANTED_HOST, crumb=PLANTED_CRUMB, user=PLANTED_USER, secret=PLANTED_SECRET)

APP_EXPORT = Template("""
import json


class ExportError(Exception):
    pass


def _check(obj):
    if "width" in obj:
        raise ExportError("could not export the image: it has no layers")
    return obj


def export_image(path):
    draft_note = "$secret"
    width = 640
    return json.loads('{"width": %d}' % width, object_hook=_check), path, draft_note
""").substitute(secret=PLANTED_SECRET)


def planted_app(root: Path) -> Path:
    """Write the app under ``root/home/<planted user>/app/`` and return its ``main.py``."""
    folder = root / "home" / PLANTED_USER / "app"
    (folder / "photoedit").mkdir(parents=True)
    (folder / "photoedit" / "__init__.py").write_text("")
    (folder / "photoedit" / "export.py").write_text(APP_EXPORT)
    (folder / "main.py").write_text(APP_MAIN)
    return folder / "main.py"


@dataclass(frozen=True)
class Captured:
    path: str  # without the query
    query: str
    headers: dict[str, str]  # names lowercased
    body: bytes  # as sent: still compressed when the SDK compressed it

    @property
    def encoding(self) -> str:
        return self.headers.get("content-encoding", "identity")


def _answer(post: RawPost) -> tuple[str, bytes]:
    return "application/json", b'{"id":"00000000000000000000000000000000"}'


def _captured(post: RawPost) -> Captured:
    target = urlsplit(post.target)
    return Captured(target.path, target.query, post.headers, post.body)


class Capture:
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    @property
    def port(self) -> int:
        return self._recorder.port

    def dsn(self, key: str, project: int = 1) -> str:
        return f"http://{key}@127.0.0.1:{self.port}/{project}"

    @property
    def received(self) -> list[Captured]:
        return [_captured(post) for post in self._recorder.received]

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Captured]:
        self._recorder.wait_until(lambda posts: len(posts) >= count, timeout)
        return self.received


@contextmanager
def capture() -> Iterator[Capture]:
    with recording(_answer) as recorder:
        yield Capture(recorder)


@dataclass(frozen=True)
class Sent:
    """What one run of a program using sentry-sdk sent, and what it printed."""

    requests: list[Captured]
    stdout: str
    stderr: str


def run_sentry_script(
    script: Path,
    *,
    key: str = "tok123",
    brotli: bool = True,
    expect: int = 1,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> Sent:
    """Run ``script`` (in its own folder) with this interpreter against a fresh :func:`capture`
    server, ``SENTRY_DSN=http://KEY@127.0.0.1:PORT/1`` and no other ``SENTRY_`` variable of this
    session; it must exit 0 having sent ``expect`` requests. ``brotli=False`` hides the brotli
    module from it, so a stock SDK falls back to gzip."""
    with capture() as server, tempfile.TemporaryDirectory(prefix="no-brotli-") as blocker:
        variables = {key_: value for key_, value in os.environ.items() if not key_.startswith("SENTRY_")}
        variables.pop("PYTHONPATH", None)
        variables["SENTRY_DSN"] = server.dsn(key)
        if not brotli:
            Path(blocker, "brotli.py").write_text(BLOCKED_BROTLI)
            variables["PYTHONPATH"] = blocker
        variables.update(env or {})
        result = subprocess.run(
            [sys.executable, str(script), *args],
            cwd=script.parent,
            env=variables,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        requests = server.wait_for(expect)
    assert len(requests) == expect, [(item.path, item.headers) for item in requests]
    return Sent(requests, result.stdout, result.stderr)
