"""Faults survived and junk tried: the crash, fault and fuzz tests, run for their counts.

These are tests (they fail on any lost report, double send, corruption or unclear
answer); this benchmark runs them once more in a subprocess and collects the counts they
record through ``tests.support.processes.record_figure``: kills that landed mid-work, reports
accepted across the kills, batches resent (with the same key and bytes), junk inputs
tried. A failing test fails the benchmark, so "lost 0" below means the checks passed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .core_bench import ROOT, BenchError
from .figures import Benchmark, Figure, Figures, Settings, temp_home

TESTS = (
    "tests/promises/test_crash.py",
    "tests/promises/test_disk_full.py",
    "tests/promises/test_damaged_database.py",
    "tests/fuzz/test_fuzz_manifest.py",
    "tests/fuzz/test_fuzz_reports.py",
    "tests/fuzz/test_fuzz_endpoint.py",
)


def collect() -> dict[str, float]:
    """Run the tests; the counts they recorded, summed by name."""
    with temp_home() as tmp:
        figures = tmp / "figures.jsonl"
        env = {**os.environ, "TELEMETRY_TRAY_FIGURES": str(figures), "QT_QPA_PLATFORM": "offscreen"}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise BenchError(f"the fault and fuzz tests failed:\n{result.stdout[-3000:]}")
        counts: dict[str, float] = {}
        for line in Path(figures).read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            counts[str(entry["name"])] = counts.get(str(entry["name"]), 0.0) + float(entry["value"])
        return counts


def _sum(counts: dict[str, float], prefix: str, suffix: str) -> float:
    return float(sum(v for k, v in counts.items() if k.startswith(prefix) and k.endswith(suffix)))


def bench_faults(settings: Settings) -> Figures:
    counts = collect()
    scenarios = sorted({k.split(".")[1] for k in counts if k.startswith("crash.")})
    if not scenarios:
        raise BenchError(
            "the crash tests recorded nothing; is tests/support/processes.py's record_figure still called?"
        )
    kills = {s: int(counts[f"crash.{s}.kills"]) for s in scenarios}
    junk = {k.split(".")[1]: int(v) for k, v in counts.items() if k.startswith("fuzz.") and k.endswith(".inputs")}
    return {
        "faults_kills": Figure(
            _sum(counts, "crash.", ".kills"),
            "kills",
            "`kill -9` landed mid-work across the crash scenarios ("
            + ", ".join(f"{s} {n}" for s, n in kills.items())
            + "), each followed by a restart and a check of every accepted report, every batch and the database.",
        ),
        "faults_reports_accepted": Figure(
            _sum(counts, "crash.", ".accepted"), "reports", "Reports answered as accepted across those runs."
        ),
        "faults_reports_lost": Figure(
            0.0,
            "reports",
            "Accepted reports missing or stored twice after a kill, a full disk or a damaged file (the tests "
            "fail on any; they passed).",
            goal_max=0,
        ),
        "faults_batches_resent": Figure(
            _sum(counts, "crash.", ".resent"),
            "batches",
            f"Batches sent again after a sender was killed ({_sum(counts, 'crash.', '.sent'):.0f} sent in all): "
            "always with the same Idempotency-Key and bytes, which DESIGN.md allows.",
        ),
        "faults_requests_resent": Figure(
            _sum(counts, "crash.", ".resent_requests"),
            "requests",
            "Report requests a kill cut off, sent again after the restart with their Idempotency-Key: each "
            "stored exactly once (whether or not the first try was).",
        ),
        "faults_disk_full_refusals": Figure(
            counts.get("faults.disk_full.refused", 0.0), "requests", "Requests answered 503 on a full (tmpfs) disk."
        ),
        "faults_damaged_refusals": Figure(
            counts.get("faults.damaged_database.refused", 0.0),
            "starts",
            "Commands refused on a damaged database (its bytes unchanged after each).",
        ),
        "fuzz_junk_inputs": Figure(
            float(sum(junk.values())),
            "inputs",
            "Junk inputs tried by the fuzz tests ("
            + ", ".join(f"{k} {v:,}" for k, v in sorted(junk.items()))
            + "): every one answered with a clear error, nothing changed, the instance still up.",
        ),
    }


BENCHMARKS = (
    Benchmark(
        "reliability.faults",
        "Faults and junk",
        "The crash, disk, damaged-database and fuzz tests, counted. Goal: nothing lost.",
        bench_faults,
    ),
)
