"""Figures, benchmarks, timing and the machine: the shared vocabulary of ``bench/``.

A benchmark is a function that returns named :class:`Figure` values. A figure may
name another figure as its *baseline* (measured in the same run, on the same
machine); its *ratio* is then ``value / baseline``. A goal bounds the ratio when
there is a baseline, and the value itself otherwise.
"""

from __future__ import annotations

import gc
import os
import platform
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    description: str
    baseline: str | None = None
    goal_min: float | None = None
    goal_max: float | None = None

    def to_obj(self, benchmark: str) -> dict[str, Any]:
        return {
            "value": self.value,
            "unit": self.unit,
            "description": self.description,
            "baseline": self.baseline,
            "goal_min": self.goal_min,
            "goal_max": self.goal_max,
            "benchmark": benchmark,
        }


@dataclass(frozen=True)
class Settings:
    repeat: int


Figures = dict[str, Figure]


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    about: str
    run: Callable[[Settings], Figures]


Trial = Callable[[], float]


def best_of(repeat: int, trials: dict[str, Trial]) -> dict[str, float]:
    """The shortest time of each trial over ``repeat`` rounds, in seconds.

    A trial sets itself up, times only the work with :func:`time.perf_counter` and
    returns the seconds. The trials take turns (round-robin), so a slow spell of the
    machine hits all of them alike rather than one.
    """
    best = dict.fromkeys(trials, float("inf"))
    for _ in range(repeat):
        for name, trial in trials.items():
            gc.collect()
            best[name] = min(best[name], trial())
    return best


@contextmanager
def temp_home() -> Iterator[Path]:
    """A temporary folder, also set as TELEMETRY_TRAY_HOME, removed afterwards."""
    old = os.environ.get("TELEMETRY_TRAY_HOME")
    with tempfile.TemporaryDirectory(prefix="tray-bench-") as folder:
        os.environ["TELEMETRY_TRAY_HOME"] = folder
        try:
            yield Path(folder)
        finally:
            if old is None:
                os.environ.pop("TELEMETRY_TRAY_HOME", None)
            else:
                os.environ["TELEMETRY_TRAY_HOME"] = old


def machine() -> dict[str, Any]:
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(affinity) if affinity is not None else os.cpu_count(),
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "temp_filesystem": _filesystem(Path(tempfile.gettempdir())),
    }


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (Linux only; empty elsewhere)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    resolved, best, kind = str(path.resolve()), "", ""
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3:
            point = parts[1]
            inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, parts[2]
    return kind
