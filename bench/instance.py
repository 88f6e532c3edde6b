"""A running instance (``run --headless``) in its own process, for the benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from .core_bench import ROOT, BenchError


class HeadlessInstance:
    """``run --headless`` on a home of its own; ``port`` once it listens."""

    def __init__(self, home: Path) -> None:
        env = {**os.environ, "TELEMETRY_TRAY_HOME": str(home), "TELEMETRY_TRAY_PORT": "0"}
        self.home = home
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tray_app", "run", "--headless"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening on" not in line:
            self.proc.kill()
            raise BenchError(f"the instance did not start: {line!r}")
        self.url = line.split("listening on ")[1].split()[0]
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it has not exited within 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
