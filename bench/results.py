"""``bench/results.json``: every benchmark's figures, merged run after run.

Shape::

    {"benchmarks": {"core.ingest": {"title", "about", "measured_at", "repeat", "machine"}, ...},
     "figures": {"ingest_reports_per_s": {"value", "unit", "description", "baseline",
                                          "goal_min", "goal_max", "benchmark"}, ...}}

Running a benchmark replaces its own entry and figures and keeps everyone else's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .figures import Benchmark, Figures

RESULTS = Path(__file__).resolve().parent / "results.json"


def load(path: Path = RESULTS) -> dict[str, Any]:
    if not path.exists():
        return {"benchmarks": {}, "figures": {}}
    results: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    results.setdefault("benchmarks", {})
    results.setdefault("figures", {})
    return results


def merge(results: dict[str, Any], benchmark: Benchmark, figures: Figures, run: dict[str, Any]) -> dict[str, Any]:
    """``results`` with ``benchmark``'s entry and figures replaced by this run's."""
    kept = {name: figure for name, figure in results["figures"].items() if figure.get("benchmark") != benchmark.name}
    clash = sorted(set(kept) & set(figures))
    if clash:
        raise ValueError(f"figures {clash} of {benchmark.name} already belong to another benchmark")
    kept.update({name: figure.to_obj(benchmark.name) for name, figure in figures.items()})
    entries = dict(results["benchmarks"])
    entries[benchmark.name] = {"title": benchmark.title, "about": benchmark.about, **run}
    return {**results, "benchmarks": entries, "figures": kept}


def save(results: dict[str, Any], path: Path = RESULTS) -> None:
    """Write atomically, so an interrupted run never leaves half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)
