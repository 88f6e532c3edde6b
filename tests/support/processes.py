"""The real program in subprocesses: the CLI, a headless instance (the one harness the
tests and benchmarks use), HTTP posts to it, and waiting for a condition."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.builders import ROOT

Run = Callable[..., subprocess.CompletedProcess[str]]


def tray_env(home: Path, **extra: str) -> dict[str, str]:
    # The OTLP port is fixed by default (4318): test instances take any free one instead,
    # so they never meet each other, or a tray the developer runs, on it.
    return {**os.environ, "TELEMETRY_TRAY_HOME": str(home), "TELEMETRY_TRAY_OTLP_PORT": "0", **extra}


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


def stop_process(
    proc: subprocess.Popen[str] | subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0
) -> bool:
    """``sig`` (SIGTERM), then SIGKILL if it has not exited within ``timeout`` seconds;
    whether it exited of its own accord."""
    if proc.poll() is not None:
        return True
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
    return True


class Proc:
    """``telemetry-tray run --headless`` on ``home``, ready once it printed where it listens:
    the one harness the tests and ``bench/`` start an instance with.

    Its output (stdout and stderr together) goes to a log file, ``log`` or a new one beside
    ``home``, never to a pipe: a long run never blocks on a full pipe, and this process holds
    nothing of it open, whether or not the instance is stopped."""

    def __init__(
        self,
        home: Path,
        port: int = 0,
        *,
        extra_env: dict[str, str] | None = None,
        ready_s: float = 60.0,
        log: Path | None = None,
    ) -> None:
        self.home = home
        self.env = tray_env(home, TELEMETRY_TRAY_PORT=str(port), **(extra_env or {}))
        if log is None:
            home.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"{home.name}-instance-", suffix=".log", dir=home.parent)
            os.close(fd)
            log = Path(name)
        self.log = log
        with log.open("ab") as out:
            self._log_from = out.tell()  # a log given twice keeps the earlier run's lines
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tray_app", "run", "--headless"],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        ready = None
        deadline = time.monotonic() + ready_s  # generous: a busy machine starts slowly
        while ready is None:
            ready = re.search(r"listening on (\S+) ", self.output())
            if ready is None and (self.proc.poll() is not None or time.monotonic() > deadline):
                self.kill()
                raise AssertionError(
                    f"the instance did not start within {ready_s:g} s (exit code {self.proc.returncode}):\n"
                    + self.output()
                )
            if ready is None:
                time.sleep(0.02)
        self.url = ready[1]
        self.port = int(self.url.rsplit(":", 1)[1])

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()

    def output(self) -> str:
        """What it has written so far, stdout and stderr interleaved."""
        with self.log.open("rb") as log:
            log.seek(self._log_from)
            return log.read().decode("utf-8", "replace")

    def endpoint(self) -> dict[str, Any]:
        return dict(json.loads((self.home / "endpoint.json").read_text()))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """``sig`` and its exit code; a failure (after SIGKILL) if it takes over ``timeout`` seconds."""
        if not stop_process(self.proc, sig, timeout):
            raise AssertionError(f"the instance did not exit within {timeout:g} s of signal {sig}:\n{self.output()}")
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL (TerminateProcess on Windows): no clean-up of any kind."""
        self.proc.kill()
        self.proc.wait()

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
