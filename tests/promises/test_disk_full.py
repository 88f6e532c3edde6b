"""A disk that fills up while apps report: clear 503s naming it, nothing corrupted, nothing
accepted lost, and the instance carries on once there is room again.

The home is a real 2 MiB tmpfs, so the disk really is full (ENOSPC, not a simulation);
mounting needs root, which CI has (the test exists only where it can run)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

from tests.support.builders import manifest_obj
from tests.support.processes import Proc, post, record_figure

APP = "org.example.tiny"
BIG = {"event": "x" * 4000}

if hasattr(os, "geteuid") and os.geteuid() == 0 and Path("/proc/filesystems").exists():

    def _mount(folder: Path, size: str) -> None:
        folder.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)], check=True)

    def test_a_full_disk_answers_503_loses_nothing_and_recovers(tmp_path: Path) -> None:
        home = tmp_path / "home"
        _mount(home, "2m")
        proc: Proc | None = None
        try:
            proc = Proc(home)
            manifest = tmp_path / "manifest.json"
            manifest.write_text(json.dumps(manifest_obj()))
            token = json.loads(proc.cli("register", str(manifest), "--json").stdout)["token"]
            assert proc.cli("consent", APP, "allow").returncode == 0
            accepted, answers = 0, []
            for _ in range(40):
                status, body = post(proc.url, "/v1/reports", {"reports": [BIG] * 50}, token)
                answers.append((status, body))
                if status == 202:
                    accepted += body["accepted"]
                if status == 503:
                    break
            assert answers[-1][0] == 503, f"the disk never filled: {answers[-1]}"
            error = answers[-1][1]
            assert error["error"] == "unavailable" and "disk is full" in error["message"], error
            assert all(status in (202, 503) for status, _ in answers), answers
            assert accepted > 0
            assert proc.proc.poll() is None  # still running
            # Room again: the same instance takes reports without a restart.
            subprocess.run(["mount", "-o", "remount,size=32m", str(home)], check=True)
            status, body = post(proc.url, "/v1/reports", {"reports": [BIG] * 5}, token)
            assert status == 202, body
            accepted += body["accepted"]
            log = proc.output()
            assert "Traceback" not in log, log
            assert proc.stop() == 0
            proc = None
            database = home / "data" / "telemetry-tray.sqlite3"
            with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                stored = conn.execute("SELECT count(*) FROM reports").fetchone()[0]
            assert stored == accepted  # every 202 is there once; nothing from a 503 half-kept
            record_figure("faults.disk_full.refused", sum(1 for status, _ in answers if status == 503))
        finally:
            if proc is not None:
                proc.kill()
            subprocess.run(["umount", "-l", str(home)], check=False)
