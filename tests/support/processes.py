"""The real program in subprocesses: the CLI, a headless instance (the one harness the
tests and benchmarks use), HTTP posts to it, and waiting for a condition."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.builders import ROOT

Run = Callable[..., subprocess.CompletedProcess[str]]


def tray_env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "TELEMETRY_TRAY_HOME": str(home), **extra}


def tray_cli(env: dict[str, str]) -> Run:
    """``telemetry-tray`` in a subprocess; checks the exit code unless ``code=None``."""

    def run(*args: str, input: str | None = None, code: int | None = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "tray_app", *args], env=env, cwd=ROOT, input=input,
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert "Traceback" not in result.stderr, result.stderr
        if code is not None:
            assert result.returncode == code, (result.stdout, result.stderr)
        return result

    return run


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Whether ``condition()`` came true within ``seconds`` (checked every 20 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class Proc:
    """``telemetry-tray run --headless`` on ``home``, ready once it printed where it listens.

    Its log goes to a temporary file, so a long run never blocks on a full pipe."""

    def __init__(
        self, home: Path, port: int = 0, *, extra_env: dict[str, str] | None = None, ready_s: float = 60.0
    ) -> None:
        self.home = home
        env = tray_env(home, TELEMETRY_TRAY_PORT=str(port), **(extra_env or {}))
        self.env = env
        self.log = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tray_app", "run", "--headless"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=ready_s)  # generous: a busy machine starts slowly
        except queue.Empty:
            line = f"(nothing within {ready_s} s)"
        if "listening on" not in line:
            self.proc.kill()
            self.proc.wait()
            self.log.seek(0)
            raise AssertionError(f"the instance did not start: {line!r}\n{self.log.read()}")
        self.url = line.split("listening on ")[1].split()[0]

    def endpoint(self) -> dict[str, Any]:
        return dict(json.loads((self.home / "endpoint.json").read_text()))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(10)
        self.close()
        return code

    def kill(self) -> None:
        """SIGKILL (TerminateProcess on Windows): no clean-up of any kind."""
        self.proc.kill()
        self.proc.wait()
        self.close()

    def close(self) -> None:
        """Our ends of its pipe and log, once it has exited."""
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tray_app", *args], env=self.env, cwd=ROOT, input=input,
            capture_output=True, text=True, check=False,
        )  # fmt: skip


def post(
    url: str, path: str, obj: object, token: str | None = None, timeout: float = 10, *, key: str | None = None
) -> tuple[int, Any]:
    """POST JSON to the ingest endpoint (with ``key`` as its Idempotency-Key); the status and the decoded answer."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, data=json.dumps(obj).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


FIGURES_ENV = "TELEMETRY_TRAY_FIGURES"


def record_figure(name: str, value: float) -> None:
    """A count for `make bench`'s reliability.faults (kills landed, junk inputs tried ...):
    appended to the file $TELEMETRY_TRAY_FIGURES names, when the bench runs these tests."""
    path = os.environ.get(FIGURES_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as figures:
            figures.write(json.dumps({"name": name, "value": value}) + "\n")
