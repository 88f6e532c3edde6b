"""``docs/benchmarks.md``, written from ``bench/results.json`` alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

_HEADER = """\
# Benchmarks

Written by `make bench` (`.venv/bin/python -m bench`) from `bench/results.json`; do not
edit by hand. `python -m bench NAME…` runs only the named benchmarks and keeps the others'
figures.

How the figures are measured:

- Every time is wall-clock time from `time.perf_counter`, around the measured work only
  (set-up, checks and clean-up are outside it). Each measurement is repeated and the
  **best** of the repeats is kept (the repeat count is given per benchmark); the
  measurements of a benchmark take turns, so a slow spell of the machine hits all alike.
- A *baseline* is measured in the same run, on the same machine, with the same data.
  *ratio* = value ÷ baseline: for rates, higher is better; for times, lower is better.
- A *goal* bounds the ratio when the figure has a baseline, and the value otherwise.
- Everything runs in a temporary folder (also set as `TELEMETRY_TRAY_HOME`) that is
  removed afterwards.
"""


def write(results: dict[str, Any], path: Path = DOC) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results), encoding="utf-8")


def render(results: dict[str, Any]) -> str:
    figures: dict[str, dict[str, Any]] = results["figures"]
    lines = [_HEADER]
    for name, entry in sorted(results["benchmarks"].items()):
        own = {key: figure for key, figure in figures.items() if figure.get("benchmark") == name}
        lines += [f"## {entry['title']} (`{name}`)", "", entry["about"], ""]
        lines += [
            "| figure | value | baseline | ratio | goal |",
            "|---|--:|---|--:|---|",
        ]
        lines += [_row(key, figure, figures) for key, figure in own.items()]
        lines.append("")
        lines += [f"- `{key}`: {figure['description']}" for key, figure in own.items()]
        lines += ["", _run_line(entry), ""]
    return "\n".join(lines).rstrip() + "\n"


def _row(name: str, figure: dict[str, Any], figures: dict[str, dict[str, Any]]) -> str:
    baseline_name = figure.get("baseline")
    baseline = figures.get(baseline_name) if baseline_name else None
    ratio = figure["value"] / baseline["value"] if baseline and baseline["value"] else None
    cells = [
        f"`{name}`",
        _value(figure),
        f"`{baseline_name}`" if baseline_name else "—",
        f"{ratio:.3f}" if ratio is not None else "—",
        _goal(figure, ratio if baseline_name else figure["value"]),
    ]
    return "| " + " | ".join(cells) + " |"


def _value(figure: dict[str, Any]) -> str:
    value, unit = figure["value"], figure["unit"]
    if unit == "×":
        return f"{value:.3f}×"
    if unit == "bytes":
        return f"{value:,.0f} bytes ({value / 1_048_576:.1f} MiB)"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "µs":
        return f"{value:,.2f} µs"
    if unit in ("s", "%", "MiB"):
        return f"{value:,.3f} {unit}"
    return f"{value:,.0f} {unit}"


def _goal(figure: dict[str, Any], measured: float | None) -> str:
    low, high = figure.get("goal_min"), figure.get("goal_max")
    if low is None and high is None:
        return "—"
    bounds = []
    if low is not None:
        bounds.append(f"≥ {low:g}")
    if high is not None:
        bounds.append(f"≤ {high:g}")
    if measured is None:
        return " and ".join(bounds)
    met = (low is None or measured >= low) and (high is None or measured <= high)
    return " and ".join(bounds) + (" — **met**" if met else " — **missed**")


def _run_line(entry: dict[str, Any]) -> str:
    m = entry.get("machine", {})
    return (
        f"Measured {entry.get('measured_at', '?')}, best of {entry.get('repeat', '?')}, on "
        f"{m.get('cpu_count', '?')} CPUs ({m.get('usable_cpus', '?')} usable; {m.get('cpu', '?')}), "
        f"{m.get('platform', '?')}, {m.get('python_implementation', 'Python')} {m.get('python', '?')}, "
        f"SQLite {m.get('sqlite', '?')}, temporary files on {m.get('temp_filesystem') or '?'}."
    )
