"""Run the benchmarks, merge their figures into bench/results.json, rewrite docs/benchmarks.md.

``python -m bench`` runs all of them; ``python -m bench core.ingest`` only the named ones
(``python -m bench http.otlp ui.idle``: the OTLP ingest and the idle tray; ``python -m bench dap.seal
dap.upload``: the DAP client).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from time import perf_counter

from . import report, results
from .core_bench import BENCHMARKS as CORE
from .dap_bench import BENCHMARKS as DAP
from .deliver_bench import BENCHMARKS as DELIVER
from .faults_bench import BENCHMARKS as FAULTS
from .figures import Benchmark, Settings, machine, now_iso
from .http_bench import BENCHMARKS as HTTP
from .load_bench import BENCHMARKS as LOAD
from .otlp_bench import BENCHMARKS as OTLP
from .sdk_bench import BENCHMARKS as SDK
from .ui_bench import BENCHMARKS as UI

BENCHMARKS: tuple[Benchmark, ...] = (*CORE, *HTTP, *OTLP, *SDK, *DELIVER, *DAP, *UI, *LOAD, *FAULTS)


def main(argv: Sequence[str] | None = None) -> int:
    known = {b.name: b for b in BENCHMARKS}
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default all: {', '.join(known)})")
    parser.add_argument("--repeat", type=int, default=3, help="take the best of this many runs (default 3)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    chosen = [known[name] for name in args.names] if args.names else list(BENCHMARKS)
    settings = Settings(repeat=args.repeat)
    about_machine = machine()

    merged = results.load()
    for benchmark in chosen:
        print(f"{benchmark.name}: running (best of {settings.repeat}) …", flush=True)
        started = perf_counter()
        figures = benchmark.run(settings)
        run = {"measured_at": now_iso(), "repeat": settings.repeat, "machine": about_machine}
        merged = results.merge(merged, benchmark, figures, run)
        for name, figure in figures.items():
            print(f"  {name:36} {figure.value:>16,.3f} {figure.unit}")
        print(f"  ({perf_counter() - started:.1f} s)", flush=True)
        # Save after each benchmark, so a later failure keeps the earlier figures.
        results.save(merged)
        report.write(merged)
    print(f"wrote {results.RESULTS} and {report.DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
