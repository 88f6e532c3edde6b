"""What the shell tests share: ``tt``, the real CLI in a subprocess on a fresh home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.builders import ROOT
from tests.support.processes import Run


@pytest.fixture
def tt(tmp_path: Path) -> Run:
    env = {**os.environ, "TELEMETRY_TRAY_HOME": str(tmp_path / "home")}

    def run(*args: str, input: str | None = None, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "tray_app", *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=False,
        )
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
        if code:
            assert result.stderr.startswith("telemetry-tray: ")
            assert result.stderr.count("\n") == 1, result.stderr  # one line
        return result

    run.home = tmp_path / "home"  # type: ignore[attr-defined]
    return run
